"""Reads of reward models: the registry, candidates to score, evaluation pairs."""
