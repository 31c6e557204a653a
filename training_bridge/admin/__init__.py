"""Admin of the training stage, one module per area."""

from training_bridge.admin import dataset_exports, datasets, training

__all__ = ["dataset_exports", "datasets", "training"]
