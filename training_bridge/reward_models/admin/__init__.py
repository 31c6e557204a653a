"""Admin of reward models (registered by training_bridge/admin.py)."""
