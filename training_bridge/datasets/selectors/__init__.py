"""Reads of datasets, one module per purpose: `datasets` (versions, diff), `selection`."""
