"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A serving process loads the promoted reward model now, in a thread, not on its first scoring
# request (REWARD_SCORING_PRELOAD; only WSGI servers import this module: manage.py commands and
# the tests do not load it).
from training_bridge.reward_models.services.scoring import scoring_preload_start  # noqa: E402

scoring_preload_start()
