"""Settings read from the environment, with an embedded default that needs no configuration.

Every value can be overridden by an environment variable of the same name (see
``.env.example``). The default is a single-machine platform: SQLite, a local
Redis, the process sandbox backend.
"""

from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(env_file)

# Off unless a settings module says otherwise: development.py turns it on, production.py refuses it.
DEBUG = env.bool("DEBUG", default=False)
# No key here: development.py has a public one for the embedded default, production.py demands a real one.
SECRET_KEY = env.str("SECRET_KEY", default="")
# The demo learner and instructor (manage.py demo_users) exist only where this is on: development.py.
DEMO_USERS_ALLOWED = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "django_ratelimit",
    "courseplatform.accounts",
    "lessons",
    "sandboxes",
]

MIDDLEWARE = [
    # /metrics answers before the host check: Prometheus scrapes pods by address (courseplatform/metrics_endpoint.py).
    "courseplatform.metrics_endpoint.MetricsEndpointMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "courseplatform.language.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "courseplatform.urls"
ASGI_APPLICATION = "courseplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "courseplatform.accounts.context.account",
                "sandboxes.broker_list.brokers_context",
            ],
        },
    },
]

# What the platform's processes write (the embedded SQLite database, beat's schedule): theirs, under `make run` the
# platform's own user's (scripts/run.sh), apart from var/'s root-only files.
PLATFORM_DATA_DIR = VAR_DIR / "platform"
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{PLATFORM_DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite makes its file, not its folder (`make run` makes it the platform user's first).
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web, worker and tests share one file: WAL and immediate transactions keep them from tripping.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process (psycopg_pool): without it every database_sync_to_async call opens a new connection
    # (a Postgres backend forked, SCRAM's key stretching): seconds each on a busy box, and the ASGI server's
    # one database thread queues everything behind it. Health checks: each connection is tried when lent,
    # so a restarted Postgres costs nothing but a new connection.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX", default=10),
        "timeout": 20,
    }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis for the channel layer, the cache and Celery; its password, when it has one, is in the URL
# (redis://:password@host:port/0). production.py refuses a URL without one.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# channels_redis's layer, with receives that wait out a Redis restart and join their groups again
# (courseplatform/channel_layer.py): the pages keep their sockets.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "courseplatform.channel_layer.RestartTolerantRedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ba",
        # JSON, not pickle: nothing read from Redis is ever unpickled, whoever wrote it.
        "OPTIONS": {"serializer": "courseplatform.cache_json.JsonSerializer"},
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["courseplatform.accounts.backends.NoDemoPasswordBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "lessons:home"
LOGOUT_REDIRECT_URL = "lessons:home"

# Sign-up: open (anyone), domain (an address in SIGNUP_ALLOWED_DOMAINS), invite (a code from
# manage.py invitation_create or the admin), closed.
SIGNUP_MODE = env.str("SIGNUP_MODE", default="open")
SIGNUP_ALLOWED_DOMAINS = env.list("SIGNUP_ALLOWED_DOMAINS", default=[])
# Attempts per address and per account name (django-ratelimit, counted in the shared cache).
LOGIN_RATE_PER_IP = env.str("LOGIN_RATE_PER_IP", default="30/m")
LOGIN_RATE_PER_USERNAME = env.str("LOGIN_RATE_PER_USERNAME", default="10/m")
SIGNUP_RATE_PER_IP = env.str("SIGNUP_RATE_PER_IP", default="10/h")
# Behind a proxy, the header that carries the client's address (e.g. HTTP_X_REAL_IP); empty: REMOTE_ADDR.
RATELIMIT_IP_META_KEY = env.str("RATELIMIT_IP_META_KEY", default="") or None
# django-ratelimit names only memcached and django-redis as supported, but what it needs is an atomic
# add and incr, which Django's own RedisCache does (SET NX and INCR).
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", _("Русский")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_BACKEND",
            default="django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}

# A strict Content Security Policy on every response: no inline scripts, nothing third-party.
# A view may set its own, stricter one (course pictures do); django-csp leaves that alone.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # static/js reads it to send cell runs and progress
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# The course the platform loads on `make run`, as Markdown files kept in git.
COURSE_DIRS = env.list(
    "COURSE_DIRS",
    default=[str(BASE_DIR / "lessons" / "content" / name) for name in ("broker-academy", "broker-academy-en")],
)

# Server folders an instructor may import a course from (besides uploading a zip).
COURSE_IMPORT_ROOTS = env.list("COURSE_IMPORT_ROOTS", default=[str(BASE_DIR / "lessons" / "content")])

# Sandboxes: which backend runs learners' brokers and where their files live.
SANDBOX_BACKEND = env.str("SANDBOX_BACKEND", default="sandboxes.backends.process.ProcessBackend")
SANDBOX_ROOT = Path(env.str("SANDBOX_ROOT", default=str(VAR_DIR / "sandboxes")))
SANDBOX_INSTANCE = env.str("SANDBOX_INSTANCE", default="ba")
SANDBOX_ALLOW_UNISOLATED = env.bool("SANDBOX_ALLOW_UNISOLATED", default=False)
# auto: a network namespace and cgroups per unit when root; none: side by side (needs the line above).
SANDBOX_ISOLATION = env.str("SANDBOX_ISOLATION", default="auto")
# The platform's own group: its unprivileged web and worker open the unit launcher's socket and the agents'.
SANDBOX_PLATFORM_GROUP = env.str("SANDBOX_PLATFORM_GROUP", default="broker-academy")
# Where the unit launcher (python -m sandboxes.launcher, root) listens for the process backend's privileged work.
SANDBOX_LAUNCHER_SOCKET = Path(env.str("SANDBOX_LAUNCHER_SOCKET", default=str(SANDBOX_ROOT / "launcher.sock")))
SANDBOX_IDLE_TIMEOUT_S = env.int("SANDBOX_IDLE_TIMEOUT_S", default=30 * 60)
SANDBOX_QUOTA_PER_USER = env.int("SANDBOX_QUOTA_PER_USER", default=4)
# Memory, in MB, that all running sandboxes together may cost (each at its broker kind's memory_mb in
# the registry); past it, learners queue (sandboxes/services/admission.py). 0: three quarters of this
# machine's memory, right for the process backend; set it for Docker or Kubernetes hosts.
SANDBOX_CAPACITY_MB = env.int("SANDBOX_CAPACITY_MB", default=0)
# How often beat reconciles records and units: a sandbox whose agent or broker died converges within this.
SANDBOX_RECONCILE_EVERY_S = env.float("SANDBOX_RECONCILE_EVERY_S", default=30.0)
# "kafka=1;rabbitmq=1" (django-environ dict): ready brokers kept waiting per kind, so a learner gets one at once.
SANDBOX_WARM_POOL = env.dict("SANDBOX_WARM_POOL", cast={"value": int}, default={})
# Beyond those floors, a pooled broker kind keeps as many ready as learners asked for in the last window
# (a class arriving), all pooled sandboxes together within this memory (MiB; 0: the floors only).
SANDBOX_WARM_POOL_MEMORY_MB = env.int("SANDBOX_WARM_POOL_MEMORY_MB", default=3072)
SANDBOX_WARM_POOL_DEMAND_WINDOW_S = env.int("SANDBOX_WARM_POOL_DEMAND_WINDOW_S", default=600)
# A class booked by its instructor (sandboxes/services/bookings.py): the pool warms its brokers from this
# long before its start (room for a few dozen brokers to boot on a small machine) until this long after.
SANDBOX_BOOKING_LEAD_S = env.int("SANDBOX_BOOKING_LEAD_S", default=15 * 60)
SANDBOX_BOOKING_HOLD_S = env.int("SANDBOX_BOOKING_HOLD_S", default=30 * 60)
SANDBOX_BOOKING_MAX_LEARNERS = env.int("SANDBOX_BOOKING_MAX_LEARNERS", default=200)
# Hard size cap of each unit's stored data, in MB, by broker kind ("default" for kinds not named); env
# "kafka=512;rabbitmq=256" overrides some. At least 64. The brokers' own watermarks are set under it.
SANDBOX_DISK_MB = {
    "default": 256,
    "kafka": 512,
    "rabbitmq": 256,
    **env.dict("SANDBOX_DISK_MB", cast={"value": int}, default={}),
}
# What a learner's stopped brokers may keep on disk for their next start, in MB, all kinds together.
# A stop past it drops the oldest data kept of the learner's other kinds; data larger than it alone is not kept.
SANDBOX_KEPT_QUOTA_MB = env.int("SANDBOX_KEPT_QUOTA_MB", default=512)
# The docker backend: limits of each unit's container (broker, agent and cells together).
SANDBOX_DOCKER_MEMORY_MB = env.int("SANDBOX_DOCKER_MEMORY_MB", default=1536)
SANDBOX_DOCKER_PIDS = env.int("SANDBOX_DOCKER_PIDS", default=1024)
SANDBOX_DOCKER_CPUS = env.float("SANDBOX_DOCKER_CPUS", default=1.0)
# The kubernetes backend (docs/k8s-lab.md): the cluster (a kubeconfig file, or empty for the pod's own
# account), the namespace of sandbox pods (empty: the kubeconfig's), the image of each broker kind,
# and each pod's CPU and disk for the broker's data (its memory is its broker kind's: backends/unit_memory.py).
SANDBOX_K8S_KUBECONFIG = env.str("SANDBOX_K8S_KUBECONFIG", default="")
SANDBOX_K8S_NAMESPACE = env.str("SANDBOX_K8S_NAMESPACE", default="")
SANDBOX_K8S_IMAGE = env.str("SANDBOX_K8S_IMAGE", default="broker-academy/{broker}:latest")
# "nats=REF,kafka=REF": an image per kind instead of the pattern above (python -m sandboxes.images.registry prints them).
SANDBOX_K8S_IMAGES = env.dict("SANDBOX_K8S_IMAGES", default={})
SANDBOX_K8S_CPUS = env.float("SANDBOX_K8S_CPUS", default=1.0)
SANDBOX_K8S_DISK_MB = env.int("SANDBOX_K8S_DISK_MB", default=1024)
# Where sandbox pods may run: a node selector ("pool=sandboxes,zone=a") and the taints they tolerate
# ("dedicated=sandboxes:NoSchedule", or "key:Effect" for any value), for nodes kept for sandboxes only.
SANDBOX_K8S_NODE_SELECTOR = env.dict("SANDBOX_K8S_NODE_SELECTOR", default={})
SANDBOX_K8S_TOLERATIONS = env.list("SANDBOX_K8S_TOLERATIONS", default=[])

# Prometheus (docs/metrics.md): /metrics of each web process and the worker's own port answer only
# "Authorization: Bearer <METRICS_TOKEN>"; unset, both are off. The worker's port is off at 0.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_WORKER_PORT = env.int("METRICS_WORKER_PORT", default=0)
METRICS_WORKER_HOST = env.str("METRICS_WORKER_HOST", default="127.0.0.1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One JSON object per line, with the extra fields a record carries (sandbox_id, user_id).
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
            "json_ensure_ascii": False,
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
        # A line per task received and succeeded drowns the one line per sandbox state change.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        # The beat's "sending due task" every few seconds as well.
        "celery.beat": {"level": "WARNING"},
    },
}

CELERY_BEAT_SCHEDULE = {
    "reap-idle-sandboxes": {"task": "sandboxes.reap_idle", "schedule": 60.0},
    "reconcile-sandboxes": {"task": "sandboxes.reconcile", "schedule": SANDBOX_RECONCILE_EVERY_S},
    # A sandbox whose worker died while its broker booted is followed again (services/readiness.py).
    "adopt-starting-sandboxes": {"task": "sandboxes.adopt", "schedule": 30.0},
    "fill-warm-pool": {"task": "sandboxes.pool_fill", "schedule": 30.0},
    # A safety net: every release already queues one (sandboxes/services/lifecycle.py).
    "admit-from-queue": {"task": "sandboxes.admit", "schedule": 60.0},
}
