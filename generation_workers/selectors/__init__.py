"""Reads of the generation stage: campaigns' prompts, progress and candidates (campaigns.py)."""
