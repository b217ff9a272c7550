"""Refuse to boot with settings that cannot work, or in production with unsafe ones.

Runs at app start-up and in `app check-config`. Outside `ENVIRONMENT=production` only plain
misconfigurations (a Redis backend without REDIS_URL) are reported, so local development and
the test suite need no real secrets.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from src.infrastructure.config.settings import DEFAULT_SECRET_KEY, Settings
from src.infrastructure.ratelimit.limiter import is_limiter_redis_url

WEAK_SECRETS = {DEFAULT_SECRET_KEY, "secret", "changeme", "change-me", "secret-key", "dev"}
WEAK_DB_PASSWORDS = {None, "", "postgres", "password", "changeme", "change-me", "admin", "root"}
MIN_SECRET_LENGTH = 32


class InsecureSettingsError(RuntimeError):
    """Raised when production settings fail validation; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("refusing to start:\n- " + "\n- ".join(problems))
        self.problems = problems


def find_problems(settings: Settings) -> list[str]:
    """Every reason these settings cannot work, or are unsafe for production."""
    problems = _inconsistencies(settings)
    if not settings.is_production:
        return problems
    key = settings.SECRET_KEY.get_secret_value()
    if key in WEAK_SECRETS or len(key) < MIN_SECRET_LENGTH or len(set(key)) < 10:
        problems.append(
            f"SECRET_KEY is a default or weak value; use at least {MIN_SECRET_LENGTH} random "
            'characters, e.g. python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    url = make_url(settings.DATABASE_URL)
    if url.get_backend_name() != "sqlite" and url.password in WEAK_DB_PASSWORDS:
        problems.append("DATABASE_URL uses an empty or default database password")
    if "*" in settings.CORS_ORIGINS and settings.CORS_ALLOW_CREDENTIALS:
        problems.append("CORS_ORIGINS contains '*' while CORS_ALLOW_CREDENTIALS is true")
    if not settings.cookie_secure:
        problems.append("COOKIE_SECURE is false: session cookies would travel over plain http")
    if not settings.CSRF_ENABLED:
        problems.append("CSRF_ENABLED is false")
    if not settings.SINGLE_PROCESS:
        problems += _per_process_state(settings)
    if not settings.RATE_LIMIT_ENABLED:
        problems.append("RATE_LIMIT_ENABLED is false: failed logins would not be throttled")
    if settings.EMAIL_BACKEND == "console":
        problems.append(
            "EMAIL_BACKEND=console sends nothing and writes every email, live reset links "
            "included, to the logs; use smtp"
        )
    frontend = urlsplit(settings.FRONTEND_URL)
    if frontend.scheme != "https" or frontend.hostname in ("localhost", "127.0.0.1", "::1"):
        problems.append("FRONTEND_URL must be the https address users open (emailed links)")
    return problems


def _per_process_state(settings: Settings) -> list[str]:
    """State that lives in one process: wrong as soon as there are two workers or hosts."""
    found = []
    if settings.is_sqlite:
        found.append("DATABASE_URL is SQLite (a file on one host)")
    if settings.SESSION_BACKEND == "memory":
        found.append("SESSION_BACKEND=memory (sessions of one process, lost on restart)")
    if settings.RATE_LIMIT_ENABLED and settings.RATE_LIMIT_STORAGE == "memory":
        found.append("RATE_LIMIT_STORAGE=memory (limits counted per process)")
    if settings.CACHE_ENABLED and settings.CACHE_BACKEND == "memory":
        found.append("CACHE_BACKEND=memory (an invalidation reaches one process only)")
    if settings.TASKIQ_BROKER == "memory":
        found.append("TASKIQ_BROKER=memory (tasks run in the web process, lost on restart)")
    if not found:
        return []
    return [
        f"per-process state: {', '.join(found)}; use Postgres and Redis (or RabbitMQ for "
        "tasks), or set SINGLE_PROCESS=true for a one-process deployment"
    ]


def _inconsistencies(settings: Settings) -> list[str]:
    """Settings that cannot work in any environment."""
    problems = []
    redis_users = [
        name
        for name in ("SESSION_BACKEND", "RATE_LIMIT_STORAGE", "TASKIQ_BROKER")
        if getattr(settings, name) == "redis"
    ]
    if redis_users and not settings.REDIS_URL:
        problems.append(f"{', '.join(redis_users)} set to redis but REDIS_URL is empty")
    elif (
        settings.RATE_LIMIT_ENABLED
        and settings.RATE_LIMIT_STORAGE == "redis"
        and not is_limiter_redis_url(settings.REDIS_URL or "")
    ):
        problems.append("RATE_LIMIT_STORAGE=redis needs a redis:// or rediss:// REDIS_URL")
    if settings.CACHE_ENABLED and settings.CACHE_BACKEND == "redis" and not settings.cache_redis:
        problems.append(
            "CACHE_BACKEND=redis but none of CACHE_REDIS_URL, CACHE_REDIS_HOST or REDIS_URL is set"
        )
    for provider in ("GOOGLE", "GITHUB"):
        # Half a client is a typo, not a choice: the provider would silently not be offered.
        client_id = getattr(settings, f"OAUTH_{provider}_CLIENT_ID")
        secret = getattr(settings, f"OAUTH_{provider}_CLIENT_SECRET")
        if bool(client_id) != bool(secret):
            problems.append(
                f"OAUTH_{provider}_CLIENT_ID and OAUTH_{provider}_CLIENT_SECRET must be set "
                "together (or both left empty)"
            )
    return problems


def validate_settings(settings: Settings) -> None:
    """Raise `InsecureSettingsError` when production settings are unsafe."""
    problems = find_problems(settings)
    if problems:
        raise InsecureSettingsError(problems)
