"""Evaluation: scoring pairs with a reward model (a job), the figures of docs/methods.md, "Evaluation", reports."""
