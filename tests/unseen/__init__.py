"""Shift environments written from the public docs alone (README, docs/DESIGN.md §3), not from the suite's envs.

Each is a case the judge got wrong when it was written; the tests that use
them say what was wrong and what must hold now.
"""
