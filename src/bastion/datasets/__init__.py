"""Loaders for the real data sets under ``shared/data`` and their canonical splits."""
