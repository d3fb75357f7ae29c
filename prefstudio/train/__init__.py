"""Reward-model training: model, objectives, MORE's weights, sampling, the job entry point (docs/methods.md, "Training objectives")."""
