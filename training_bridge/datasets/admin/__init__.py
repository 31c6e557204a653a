"""Admin of datasets, versions, records and exports (registered by training_bridge/admin.py)."""
