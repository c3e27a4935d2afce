"""Figures: one module per stage, each function returns a matplotlib figure."""
