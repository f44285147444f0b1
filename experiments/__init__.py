"""Hydra entry points: thin wiring from configs to library code."""
