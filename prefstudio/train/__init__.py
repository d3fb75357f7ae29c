"""Reward-model training: model, objectives, MORE's weights, sampling, the job entry point (SPEC §3)."""
