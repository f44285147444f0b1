"""Learners, policy networks, checkpoints and reference policies for the suite."""
