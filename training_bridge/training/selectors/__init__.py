"""Reads of training runs, their metrics and the launcher definitions."""
