"""Evaluation: scoring pairs with a reward model (a job), the figures of SPEC §4, reports."""
