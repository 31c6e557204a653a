"""Writes of reward models in use: `registry`, `scoring`, `active_learning`."""
