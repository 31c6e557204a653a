"""API of datasets, versions, exports and their artifact downloads."""
