"""Writes of the generation stage: prompts (prompts.py), configs and campaigns (campaigns.py)."""
