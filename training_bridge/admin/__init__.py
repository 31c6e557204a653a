"""Admin of the training stage, one module per area."""

from training_bridge.admin import dataset_exports, datasets, launchers, reward_models, training

__all__ = ["dataset_exports", "datasets", "launchers", "reward_models", "training"]
