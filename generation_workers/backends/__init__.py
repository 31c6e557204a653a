"""Image generator backends, run by the generation workers only (see each module)."""
