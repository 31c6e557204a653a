"""API of training runs and launcher definitions (`/api/training-runs/...`)."""
