"""Admin of training runs and launcher definitions (registered by training_bridge/admin.py)."""
