"""The generation stage's API, one module per area."""
