"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What a serving process starts with (settings.WSGI_STARTUP: e.g. the reward model's preload,
# in a thread). Only WSGI servers import this module: manage.py commands and the tests do not.
# Named in the settings, as the apps are, so config imports no app.
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

for hook in settings.WSGI_STARTUP:
    import_string(hook)()
