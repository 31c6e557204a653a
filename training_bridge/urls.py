"""The app's API routes (namespace `api:training`): each sub-package's list, mounted here."""

from training_bridge.datasets import urls as datasets_urls
from training_bridge.reward_models import urls as reward_models_urls
from training_bridge.training import urls as training_urls

app_name = "training"

urlpatterns = [
    *datasets_urls.urlpatterns,
    *reward_models_urls.urlpatterns,
    *training_urls.urlpatterns,
]
