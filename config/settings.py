"""One env-driven settings module.

Every value comes from the environment with a development default: the embedded PostgreSQL
under var/ (deploy/dev/embedded_db.py, started by `make demo`) and the local disk; SECRET_KEY
has none unless DJANGO_DEBUG=1. Production sets SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL and
STORAGE_BACKEND=s3 (see docs/operations.md).
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("SPATIALPREFS_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Sessions, CSRF tokens, password-reset links and signed values all rest on this key, and a key
# written in the code is public: only a development process (DJANGO_DEBUG=1) may run on one.
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DJANGO_DEBUG=0 (the default) SpatialPrefs will not start "
            "on a key written in its code. Set SECRET_KEY to 50 or more random characters, e.g. "
            "the output of: python -c 'from django.core.management.utils import "
            "get_random_secret_key; print(get_random_secret_key())' (every web and worker process "
            "of one installation needs the same key; see docs/operations.md)."
        )
    SECRET_KEY = "django-insecure-dev-only-key-change-me-in-production-0123456789"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files (offline)
    "storages",
    "health_check",  # readiness checks (config/observability.py)
    "django_prometheus",  # request metrics on /metrics (config/metrics.py)
    "axes",  # failed-login lockout: AXES_* below
    "accounts",  # API tokens, stored as digests
    "generation_workers",
    "annotation",
    "training_bridge",
    "frontend",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first: times every request
    "config.logs.RequestIdMiddleware",  # X-Request-ID in, out and on every log line
    "django.middleware.security.SecurityMiddleware",
    # Outside everything that may read the database (sessions, auth, views): while PostgreSQL
    # cannot be reached, /api/ answers JSON 503 and pages a plain 503, both with Retry-After.
    # After SecurityMiddleware only so that those answers keep its headers.
    "config.outage.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CommonMiddleware, the first to check the Host: the probes and Prometheus ask the
    # pod's own address, and these paths are answered whatever their Host (config/probes.py).
    "config.probes.ProbeMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into accounts/lockout.py's answer.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",  # last, as django-prometheus asks
]

# Metrics (config/metrics.py): /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`
# (unset: nobody). The scrape-time collectors, named so that config imports no app.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_COLLECTORS = [
    "config.metrics.CeleryQueueCollector",
    "annotation.metrics.LabelingCollector",
    "training_bridge.metrics.ProgressCollector",
]
PROMETHEUS_EXPORT_MIGRATIONS = False  # no database read at start-up

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only. The default is the embedded server of `make demo` (and of `make test` where no
# database service answers): deploy/dev/embedded_db.py starts it with its data and Unix socket in
# VAR_DIR/postgres; this URL is the one that script prints.
EMBEDDED_DATABASE_DIR = VAR_DIR.resolve() / "postgres"
DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"postgres://postgres@/spatialprefs?host={quote(str(EMBEDDED_DATABASE_DIR))}",
    )
}
# libpq's `?host=/folder` (a Unix socket folder) and `?port=` arrive in OPTIONS: Django's HOST and
# PORT hold them, so code that builds a URL for another process finds them there.
for _key in ("host", "port"):
    if _key in DATABASES["default"].get("OPTIONS", {}) and not DATABASES["default"][_key.upper()]:
        DATABASES["default"][_key.upper()] = str(DATABASES["default"]["OPTIONS"].pop(_key))
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Seconds a client is told to wait (Retry-After) when the database cannot be reached.
DATABASE_UNAVAILABLE_RETRY_AFTER = env.int("DATABASE_UNAVAILABLE_RETRY_AFTER", default=5)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# django-axes first: it refuses a locked-out (username, address) before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins (/accounts/login/, /admin/login/, POST /api/auth/token/) are counted per username
# and client address; at the limit that pair is locked for the cool-off (each try meanwhile
# starts it again), and a successful login clears the count. Behind a proxy REMOTE_ADDR is the
# proxy's, so the lock is effectively per username (see docs/operations.md).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_SENSITIVE_PARAMETERS = ["password"]
# API tokens (accounts/): every token expires this many days after it is issued.
API_TOKEN_LIFETIME_DAYS = env.float("API_TOKEN_LIFETIME_DAYS", default=30.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# The `license` of every export folder's dataset card (a Hugging Face license identifier).
DATASET_CARD_LICENSE = env("DATASET_CARD_LICENSE", default="other")

# Object storage: local files by default, S3 (or any S3 API) with STORAGE_BACKEND=s3.
STORAGE_BACKEND = env("STORAGE_BACKEND", default="local")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("S3_BUCKET"),
            "endpoint_url": env("S3_ENDPOINT_URL", default=None),
            "access_key": env("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
            "region_name": env("S3_REGION", default="us-east-1"),
            "signature_version": "s3v4",
            "addressing_style": env("S3_ADDRESSING_STYLE", default="path"),
            "file_overwrite": False,
            "default_acl": None,
            # Presigned URLs: leads' candidate images, artifacts, queues' example images (pair
            # images reach annotators only through the labeling image view).
            "querystring_expire": env.int("S3_URL_EXPIRE_SECONDS", default=6 * 3600),
        },
    }
elif STORAGE_BACKEND == "local":
    _default_storage = {
        # Files appear under their name only whole and on disk (temp file, fsync, rename).
        "BACKEND": "config.storage.AtomicFileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    }
else:
    raise environ.ImproperlyConfigured(
        f"STORAGE_BACKEND must be 'local' or 's3', got {STORAGE_BACKEND!r}"
    )
# Stored files (pair images above all) answered by nginx instead of streamed by the web worker:
# the prefix of the proxy's internal location, /_media/ for local storage or /_store/ for S3
# (config/stored_files.py, deploy/proxy/internal-files.conf). Empty: the app streams them.
STORAGE_ACCEL_REDIRECT = env("STORAGE_ACCEL_REDIRECT", default="")
if STORAGE_ACCEL_REDIRECT and not (
    STORAGE_ACCEL_REDIRECT.startswith("/") and STORAGE_ACCEL_REDIRECT.endswith("/")
):
    raise environ.ImproperlyConfigured(
        f"STORAGE_ACCEL_REDIRECT must be empty or a path that starts and ends with '/', "
        f"got {STORAGE_ACCEL_REDIRECT!r}"
    )
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "accounts.authentication.ApiTokenAuthentication",
    ],
    # Who may call what: the role matrix (config/permissions.py); no row, nobody.
    "DEFAULT_PERMISSION_CLASSES": ["config.permissions.RolePermission"],
    "DEFAULT_SCHEMA_CLASS": "config.role_schema.RoleMatrixSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # Bounded JSON (depth, NUL, lone surrogates) and checked limit/offset: config/parsers.py,
    # config/pagination.py.
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "config.parsers.FormParser",
        "config.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SpatialPrefs API",
    "DESCRIPTION": "Spatial prompts, generation campaigns, pairwise labeling, datasets, "
    "reward-model training and scoring.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from our own static files, not a CDN: it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The error answers every operation can give (400/401/403/404): config/schema.py.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.error_responses_add",
    ],
    # Many models have a `status`; name each enum after its model so the schema stays stable.
    "ENUM_NAME_OVERRIDES": {
        f"{model}StatusEnum": f"{app}.models.{model}.Status"
        for app, models in {
            "generation_workers": ["PromptSet", "Campaign", "Candidate"],
            # PairBuild.Status has the same choices as DatasetExport.Status: one enum, "JobStatus".
            "annotation": ["LabelingQueue", "Assignment"],
            "training_bridge": ["DatasetVersion", "TrainingRun", "RewardModel"],
        }.items()
        for model in models
    }
    | {"JobStatusEnum": "training_bridge.models.DatasetExport.Status"},
}

# Request size limits: bad or oversized payloads get a 4xx before they reach a view.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=32 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# Celery: see config/celery.py for the queues and per-task options.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# The longest task is a training run (hard limit 12 h); Redis must not redeliver it meanwhile.
CELERY_LONGEST_TASK_SECONDS = 12 * 3600
CELERY_VISIBILITY_TIMEOUT = CELERY_LONGEST_TASK_SECONDS + 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# A generation worker leases the items of the batch it renders and renews the lease while it
# works; items whose lease ran out (the worker died) are queued again by the other workers.
GENERATION_LEASE_SECONDS = env.int("GENERATION_LEASE_SECONDS", default=120)
# A generation worker stores and records a batch's images while it renders the next one
# (generation_workers/services/write_behind.py); off: each task stores before it returns.
GENERATION_WRITE_BEHIND = env.bool("GENERATION_WRITE_BEHIND", default=True)
# Backends beside the built-in ones, name=module (a module with `backend_for(config)`), for
# stand-ins such as bench/scale's simulated GPU. A config naming one is made through the ORM:
# the API and the admin offer the built-in backends only.
GENERATION_EXTRA_BACKENDS = env.dict("GENERATION_EXTRA_BACKENDS", default={})
# A training worker beats every TRAINING_HEARTBEAT_SECONDS while its run goes on; every worker
# marks failed the runs whose last beat is older than TRAINING_HEARTBEAT_STALE_SECONDS (a crash).
TRAINING_HEARTBEAT_SECONDS = env.float("TRAINING_HEARTBEAT_SECONDS", default=5.0)
TRAINING_HEARTBEAT_STALE_SECONDS = env.float("TRAINING_HEARTBEAT_STALE_SECONDS", default=120.0)
TRAINING_WORK_DIR = env("TRAINING_WORK_DIR", default=None)  # runs' scratch; default: the temp dir
# Names of environment variables a training launcher definition may never list (beside
# SECRET_KEY, DATABASE_URL, the broker, result backend and AWS keys, which it never may).
TRAINING_LAUNCHER_SECRET_ENV = env.list("TRAINING_LAUNCHER_SECRET_ENV", default=[])
# The Kubernetes launcher (training_bridge/training/services/kubernetes/): a run whose config
# says "launcher": "kubernetes" becomes a Job the training worker submits and follows
# (docs/operations.md). Unset values take the defaults of kubernetes/manifests.py (DEFAULTS).
TRAINING_KUBERNETES_ENABLED = env.bool("TRAINING_KUBERNETES_ENABLED", default=False)
TRAINING_KUBERNETES_NAMESPACE = env("TRAINING_KUBERNETES_NAMESPACE", default=None)
TRAINING_KUBERNETES_IMAGE = env("TRAINING_KUBERNETES_IMAGE", default=None)
TRAINING_KUBERNETES_SERVICE_ACCOUNT = env("TRAINING_KUBERNETES_SERVICE_ACCOUNT", default=None)
TRAINING_KUBERNETES_NODE_SELECTOR = env.json("TRAINING_KUBERNETES_NODE_SELECTOR", default=None)
TRAINING_KUBERNETES_TOLERATIONS = env.json("TRAINING_KUBERNETES_TOLERATIONS", default=None)
TRAINING_KUBERNETES_ENV_FROM = env.list("TRAINING_KUBERNETES_ENV_FROM", default=None)
TRAINING_KUBERNETES_CPU = env("TRAINING_KUBERNETES_CPU", default=None)
TRAINING_KUBERNETES_MEMORY = env("TRAINING_KUBERNETES_MEMORY", default=None)
TRAINING_KUBERNETES_SHM = env("TRAINING_KUBERNETES_SHM", default=None)
TRAINING_KUBERNETES_DEADLINE_SECONDS = env.int("TRAINING_KUBERNETES_DEADLINE_SECONDS", default=None)
TRAINING_KUBERNETES_TTL_SECONDS = env.int("TRAINING_KUBERNETES_TTL_SECONDS", default=None)
TRAINING_KUBERNETES_KUBECONFIG = env("TRAINING_KUBERNETES_KUBECONFIG", default=None)
# No setting here for experiment trackers: the built-in trainer always writes TensorBoard event
# files (a run artifact), and logs to MLflow when the worker's environment has
# MLFLOW_TRACKING_URI, to W&B when it has WANDB_PROJECT (training/trainer/tracking.py).
# Reward models in use (training_bridge/reward_models/services: scoring, registry, active_learning).
REWARD_SCORING_DEVICE = env("REWARD_SCORING_DEVICE", default="cpu")  # of the scoring API
# torch threads of a process's forward passes: 1 (more cores: more worker processes); torch's own
# default, a thread per core, scored fewer images/s on shared cores (bench/scoring/RESULTS.md).
REWARD_SCORING_THREADS = env.int("REWARD_SCORING_THREADS", default=1)
# Images waiting in a serving process past which a scoring request is a 503 with Retry-After.
REWARD_SCORING_MAX_PENDING = env.int("REWARD_SCORING_MAX_PENDING", default=1024)
# A serving process loads the promoted model when it starts (config/wsgi.py), not on a request.
REWARD_SCORING_PRELOAD = env.bool("REWARD_SCORING_PRELOAD", default=True)
# Called once by config/wsgi.py in each WSGI serving process (dotted paths, as the apps are named).
WSGI_STARTUP = ["training_bridge.reward_models.services.scoring.scoring_preload_start"]
# Scoring jobs (enqueue/poll, training_bridge/reward_models/services/score_jobs.py): state in
# Redis (default: the broker's), run by a few threads per serving process, kept this long.
REWARD_SCORE_JOBS_REDIS_URL = env("REWARD_SCORE_JOBS_REDIS_URL", default=None)
REWARD_SCORE_JOBS_THREADS = env.int("REWARD_SCORE_JOBS_THREADS", default=2)
REWARD_SCORE_JOBS_MAX_QUEUED = env.int("REWARD_SCORE_JOBS_MAX_QUEUED", default=16)
REWARD_SCORE_JOB_MAX_IMAGES = env.int("REWARD_SCORE_JOB_MAX_IMAGES", default=512)
REWARD_SCORE_JOB_TTL_SECONDS = env.int("REWARD_SCORE_JOB_TTL_SECONDS", default=3600)
# Images per forward pass: concurrent requests share passes up to this many (4 RL clients x 64).
REWARD_SCORING_MAX_BATCH = env.int("REWARD_SCORING_MAX_BATCH", default=256)
REWARD_SCORING_MAX_MODELS = env.int("REWARD_SCORING_MAX_MODELS", default=2)  # kept loaded
# How often a serving process looks up which model is promoted (a promotion is picked up then).
REWARD_SCORING_REFRESH_SECONDS = env.float("REWARD_SCORING_REFRESH_SECONDS", default=1.0)
# How long a forward pass with room waits for more requests (0: it takes what is waiting).
REWARD_SCORING_MAX_WAIT_MS = env.float("REWARD_SCORING_MAX_WAIT_MS", default=0.0)
REWARD_SCORE_MAX_IMAGES = env.int("REWARD_SCORE_MAX_IMAGES", default=128)  # per request
REWARD_SCORE_MAX_IMAGE_BYTES = env.int("REWARD_SCORE_MAX_IMAGE_BYTES", default=4 * 1024 * 1024)
REWARD_SCORE_MAX_REQUEST_BYTES = env.int("REWARD_SCORE_MAX_REQUEST_BYTES", default=32 * 1024 * 1024)
REWARD_SCORE_MAX_PIXELS = env.int("REWARD_SCORE_MAX_PIXELS", default=4096 * 4096)
REWARD_SCORE_MAX_PROMPT_CHARS = env.int("REWARD_SCORE_MAX_PROMPT_CHARS", default=4000)
REWARD_MODEL_NAME = env("REWARD_MODEL_NAME", default="spatial-rm")  # the name the API serves
REWARD_MODEL_CACHE_DIR = env("REWARD_MODEL_CACHE_DIR", default=None)  # default: var/cache/...
# Above these sizes, evaluating a model / scoring a campaign for active learning runs as a task.
REWARD_EVALUATE_SYNC_MAX_PAIRS = env.int("REWARD_EVALUATE_SYNC_MAX_PAIRS", default=500)
REWARD_ACTIVE_LEARNING_SYNC_MAX_CANDIDATES = env.int(
    "REWARD_ACTIVE_LEARNING_SYNC_MAX_CANDIDATES", default=1000
)
# A successful token check is remembered per process this long on the hot API paths (labeling
# loop, scoring): a revoked token or account stops working everywhere within it (0: never).
AUTH_REMEMBER_SECONDS = env.float("AUTH_REMEMBER_SECONDS", default=1.0)
# Recovery of lost broker messages (config/celery.py, docs/operations.md): Celery beat runs each
# app's sweep every RECOVERY_SWEEP_SECONDS; work still queued or running with no sign of life
# (progress, heartbeat, lease, publish) for RECOVERY_STALE_SECONDS is published again.
RECOVERY_SWEEP_SECONDS = env.float("RECOVERY_SWEEP_SECONDS", default=60.0)
RECOVERY_STALE_SECONDS = env.float("RECOVERY_STALE_SECONDS", default=600.0)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker of `make demo`: messages are files in a folder, no Redis needed.
    _broker_dir = Path(env("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Late acks are opted into per task (idempotent tasks only), as the house style says.
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection before and after every task unless this
# is set: a fresh PostgreSQL connection per task was a third of a batch-1 render's overhead.
# With it a worker keeps its connection across tasks the way the web keeps it across requests
# (config/celery.py: close_old_connections at each task boundary honours CONN_MAX_AGE, the
# health check and errors); the fixup still reconnects every CELERY_DB_REUSE_MAX tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
    SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# The kubelet's probes and Prometheus's scrape reach a pod over plain HTTP, past the proxy:
# with SECURE_SSL_REDIRECT they are answered, not sent to https (everything else still is).
SECURE_REDIRECT_EXEMPT = [r"^api/health/(live/)?$", r"^metrics$"]

# LOG_FORMAT=json: one JSON object per line with the request id (config/logs.py), for a log
# collector; text (the default) for people.
LOG_FORMAT = env("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "config.logs.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
WHITENOISE_USE_FINDERS = True  # serve app static files even before collectstatic

# Errors to Sentry when SENTRY_DSN is set (config/sentry.py; sentry-sdk is installed separately).
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from config.sentry import sentry_init

    sentry_init(
        SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", default=None),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
