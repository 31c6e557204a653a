"""Reads of the dataset stage, one module per purpose."""
