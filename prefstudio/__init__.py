"""prefstudio: a terminal studio for people who build reward models."""

__version__ = "0.1.0"
