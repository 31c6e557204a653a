"""Admin of the training stage: each sub-package registers its own pages."""

from training_bridge.datasets.admin import dataset_exports, datasets
from training_bridge.reward_models.admin import reward_models
from training_bridge.training.admin import launchers, training

__all__ = ["dataset_exports", "datasets", "launchers", "reward_models", "training"]
