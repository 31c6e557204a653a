"""The training stage's API, one module per area."""
