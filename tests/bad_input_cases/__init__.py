"""Hostile inputs and faults, one module per area (see case.py); tests/bad_inputs.py gathers them."""
