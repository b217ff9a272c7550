"""Application settings, read once from the environment and `.env` (pydantic-settings).

Every variable is documented in `backend/.env.example`. The defaults are the embedded profile:
a SQLite file, in-process stores, no external service needed.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "insecure-default-secret-key-change-me"  # noqa: S105 - the known-bad value


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:).*(?P<at>@)")


def mask_url(url: str) -> str:
    """`url` with the password of its user info replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<at>", url)


class Environment(StrEnum):
    LOCAL = "local"
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"
    PYTEST = "pytest"


def _env_file() -> str | None:
    # The test suite is configured by its own environment only: a developer's `.env` (say, a
    # production-like profile) must not change what the tests run against.
    return None if os.environ.get("ENVIRONMENT") == Environment.PYTEST.value else ".env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=_env_file(),
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `KEY=` in .env means "use the default"
        extra="ignore",
        case_sensitive=True,
        # An assignment (tests patch settings) is validated too: a str becomes a SecretStr.
        validate_assignment=True,
    )

    # --- application -------------------------------------------------------------------------
    APP_NAME: str = "FastAPI Boilerplate"
    APP_VERSION: str = "0.1.0"
    ENVIRONMENT: Environment = Environment.LOCAL
    # true: this deployment is one process (`app serve --workers 1`, one host), so production
    # accepts per-process state (SQLite, in-memory sessions, rate limits, cache, task broker).
    SINGLE_PROCESS: bool = False
    SECRET_KEY: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    # None = on everywhere but production.
    DOCS_ENABLED: bool | None = None
    # The admin panel at /admin (src/interfaces/admin): superusers (or `admin.access`) only.
    ADMIN_ENABLED: bool = True
    MAX_REQUEST_BODY_BYTES: int = 1_048_576
    # Backpressure, per process: reads beyond this many at once wait their turn (in arrival
    # order) up to REQUEST_QUEUE_TIMEOUT_SECONDS, then get 503 + Retry-After. Unset: the pool's
    # connections plus two (more would only wait for a connection, under a shorter timeout,
    # while slowing the ones that have one). 0 = unbounded.
    MAX_CONCURRENT_REQUESTS: int | None = None
    REQUEST_QUEUE_TIMEOUT_SECONDS: float = 5.0

    # --- database ------------------------------------------------------------------------------
    DATABASE_URL: str = "sqlite+aiosqlite:///./data/app.db"
    DATABASE_ECHO: bool = False
    # Connections per process. Overflow connections are opened under load and closed as soon as
    # they are returned, so a sustained load above the pool size reconnects on every request
    # (measured: a third of a read's CPU); size the pool instead (docs/performance.md).
    DATABASE_POOL_SIZE: int = 10
    DATABASE_MAX_OVERFLOW: int = 0
    # Seconds a request waits for a pooled connection before it answers 503 + Retry-After.
    DATABASE_POOL_TIMEOUT: float = 2.0
    DATABASE_POOL_RECYCLE: int = 1800
    # A connection idle in the pool for longer than this is pinged before use, so a restarted
    # database or a dropped idle connection never fails a request; a busy pool never pings
    # (no round trip on the hot path). 0 pings before every use; a negative value never pings.
    DATABASE_POOL_PING_IDLE_SECONDS: float = 10.0
    # Ping before every use instead (one round trip per request, SQLAlchemy's pre-ping): only
    # for networks that silently drop connections in use.
    DATABASE_POOL_PRE_PING: bool = False

    # --- sessions and cookies ------------------------------------------------------------------
    # database: the user_sessions table; redis: REDIS_URL (shared, survives restarts);
    # memory: this process only (tests, single-process demos).
    SESSION_BACKEND: Literal["database", "redis", "memory"] = "database"
    SESSION_COOKIE_NAME: str = "session"
    SESSION_IDLE_TIMEOUT_SECONDS: int = 2 * 60 * 60
    SESSION_ABSOLUTE_TIMEOUT_SECONDS: int = 7 * 24 * 60 * 60
    # last_seen is written at most this often, so an authenticated read is usually read-only.
    SESSION_TOUCH_INTERVAL_SECONDS: int = 60
    SESSION_MAX_PER_USER: int = 10
    # The signed cookie a browser gets at sign-in: the login throttle does not lock a browser
    # that signed in to the account before out with the lockout strangers trigger.
    DEVICE_COOKIE_NAME: str = "device"
    DEVICE_COOKIE_MAX_AGE_SECONDS: int = 365 * 24 * 60 * 60
    # MFA: an account with a second factor gets no session from its password alone, but a
    # pending sign-in (an HttpOnly cookie, path /api/v1/auth) that POST /auth/mfa/verify
    # completes with a TOTP or recovery code within this many seconds.
    MFA_PENDING_COOKIE_NAME: str = "mfa_pending"
    MFA_PENDING_TTL_SECONDS: int = Field(default=300, gt=0)
    # None = Secure everywhere except the local and pytest environments (plain-http dev servers).
    COOKIE_SECURE: bool | None = None
    COOKIE_DOMAIN: str | None = None

    # --- CSRF (double-submit cookie, bound to the session) -------------------------------------
    CSRF_ENABLED: bool = True
    CSRF_COOKIE_NAME: str = "csrf_token"
    CSRF_HEADER_NAME: str = "X-CSRF-Token"

    # --- passwords -----------------------------------------------------------------------------
    PASSWORD_MIN_LENGTH: int = 8
    PASSWORD_MAX_LENGTH: int = 128
    # argon2id, OWASP minimum: m=19 MiB, t=2, p=1. The pytest environment uses cheaper values.
    ARGON2_TIME_COST: int = 2
    ARGON2_MEMORY_COST_KIB: int = 19_456
    ARGON2_PARALLELISM: int = 1
    # Hashes run at once per process, in a thread pool of their own; 0 = one less than the
    # cores (at least one), so a login flood never takes the event loop's core.
    PASSWORD_HASH_THREADS: int = 0

    # --- network -------------------------------------------------------------------------------
    # How many reverse proxies in front of the app append to X-Forwarded-For (0 = trust none).
    TRUSTED_PROXY_HOPS: int = 0
    CORS_ORIGINS: Annotated[list[str], NoDecode] = []
    CORS_ALLOW_CREDENTIALS: bool = True

    # --- Redis (sessions, rate limits, tasks in the production profile) ------------------------
    # e.g. redis://:password@redis-host:6379/0. Required by every setting below set to redis.
    REDIS_URL: str | None = None

    # --- cache (@cache) ----------------------------------------------------------------------
    CACHE_ENABLED: bool = True
    CACHE_BACKEND: Literal["memory", "redis"] = "memory"
    # Where the Redis cache lives, first match wins: CACHE_REDIS_URL; else CACHE_REDIS_HOST /
    # PORT / DB / PASSWORD when any of them is set (host 127.0.0.1, port 6379, db 0 for the
    # ones left empty); else REDIS_URL. None of them with CACHE_BACKEND=redis is refused.
    CACHE_REDIS_URL: str | None = None
    CACHE_REDIS_HOST: str | None = None
    CACHE_REDIS_PORT: int | None = None
    CACHE_REDIS_DB: int | None = None
    CACHE_REDIS_PASSWORD: SecretStr | None = None
    CACHE_DEFAULT_TTL_SECONDS: int = 60
    CACHE_KEY_PREFIX: str = "cache:"

    # --- background tasks (Taskiq) -----------------------------------------------------------
    # memory: run in-process (embedded profile, tests); redis: REDIS_URL; rabbitmq: RABBITMQ_URL.
    TASKIQ_BROKER: Literal["memory", "redis", "rabbitmq"] = "memory"
    RABBITMQ_URL: str = "amqp://guest:guest@127.0.0.1:5672/"
    TASKIQ_QUEUE_NAME: str = "backend-tasks"
    TASKIQ_MAX_RETRIES: int = 3
    TASKIQ_RETRY_DELAY_SECONDS: float = 1.0
    # Redis stream broker: a message a worker took and has not acknowledged after this long
    # (the worker died) is handed to another worker; checked every 1/4 of it. Live workers
    # keep their running tasks' messages fresh, so a long task is never taken twice.
    TASKIQ_REDELIVER_AFTER_SECONDS: float = Field(default=60.0, gt=0, le=3600)
    # Outbox relay (src/infrastructure/taskiq/outbox.py): how often it looks for due rows
    # (a commit that added rows wakes the relay of its own process at once), the backoff
    # after the broker refused a row (doubling from BASE up to MAX), how long a claimed row
    # waits before another relay may take it, and how long sent rows are kept.
    OUTBOX_POLL_INTERVAL_SECONDS: float = Field(default=1.0, gt=0)
    OUTBOX_BACKOFF_BASE_SECONDS: float = Field(default=1.0, gt=0)
    OUTBOX_BACKOFF_MAX_SECONDS: float = Field(default=60.0, gt=0)
    OUTBOX_PUBLISH_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    OUTBOX_CLAIM_SECONDS: float = Field(default=60.0, gt=0)
    OUTBOX_BATCH_SIZE: int = Field(default=100, gt=0)
    OUTBOX_KEEP_SENT_DAYS: int = Field(default=7, ge=0)
    # Run the relay inside the API process too (besides `app worker`): the commit of a
    # request wakes it, so a task reaches the broker within milliseconds.
    OUTBOX_RELAY_IN_API: bool = True

    # --- email -------------------------------------------------------------------------------
    # console: log the message (development); smtp: send through SMTP_*.
    EMAIL_BACKEND: Literal["console", "smtp"] = "console"
    EMAIL_FROM: str = "no-reply@example.com"
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 587
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_STARTTLS: bool = True
    SMTP_TIMEOUT_SECONDS: float = 10.0
    # The frontend: where the links in emails point (pages that take `?token=` and post it to
    # the API: `/verify-email`, `/reset-password`, `/confirm-email-change`) and where an OAuth
    # sign-in lands.
    FRONTEND_URL: str = "http://localhost:8000"

    # --- account lifecycle -------------------------------------------------------------------
    # true: routes that need a verified account (`VerifiedUser`) answer 403 until the owner
    # followed the verification link.
    EMAIL_VERIFICATION_REQUIRED: bool = False
    # How long each kind of emailed link works (single use, and void once the account's email
    # or password changes).
    EMAIL_VERIFICATION_TOKEN_TTL_SECONDS: int = 48 * 60 * 60
    PASSWORD_RESET_TOKEN_TTL_SECONDS: int = 60 * 60
    EMAIL_CHANGE_TOKEN_TTL_SECONDS: int = 24 * 60 * 60

    # --- rate limits -------------------------------------------------------------------------
    RATE_LIMIT_ENABLED: bool = True
    # memory: this process; redis: REDIS_URL, shared by every worker and host.
    RATE_LIMIT_STORAGE: Literal["memory", "redis"] = "memory"
    # Applied where no tier/route rule matches, in `limits` notation ("100/minute").
    RATE_LIMIT_DEFAULT: str = "120/minute"
    RATE_LIMIT_ANONYMOUS: str = "60/minute"
    # Redis storage: each process admits hits from a local allowance and settles them with
    # Redis at least this often (no round trip per request); 0 = one round trip per hit.
    # Limits under 100 per window are always exact (see src/infrastructure/ratelimit).
    RATE_LIMIT_SYNC_INTERVAL_SECONDS: float = 0.25

    # --- logging and metrics -----------------------------------------------------------------
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # None = human-readable in local, JSON everywhere else.
    LOG_JSON: bool | None = None
    # One structured line per request (method, route, status, duration, request id).
    LOG_ACCESS: bool = True
    METRICS_ENABLED: bool = True
    # When set, /metrics needs `Authorization: Bearer <token>`; production requires it or
    # METRICS_PORT (a separate listener that is not exposed publicly).
    METRICS_TOKEN: SecretStr | None = None
    METRICS_PORT: int | None = None

    # --- OAuth sign-in (Google, GitHub) -------------------------------------------------------
    # The browser lands on FRONTEND_URL (above) + the `redirect_to` path after an OAuth
    # sign-in, or FRONTEND_URL + "/login?error=<code>" when it failed.
    # The public origin providers send the browser back to: the redirect URI to register is
    # <this>/api/v1/auth/oauth/<provider>/callback. None = the origin the request came in on.
    OAUTH_REDIRECT_BASE_URL: str | None = None
    # A provider is offered (and the /auth/oauth routes exist) only when both its client id and
    # its secret are set.
    OAUTH_GOOGLE_CLIENT_ID: str | None = None
    OAUTH_GOOGLE_CLIENT_SECRET: SecretStr | None = None
    OAUTH_GITHUB_CLIENT_ID: str | None = None
    OAUTH_GITHUB_CLIENT_SECRET: SecretStr | None = None
    # The providers' endpoints; tests point them at a fake provider.
    OAUTH_GOOGLE_AUTHORIZE_URL: str = "https://accounts.google.com/o/oauth2/v2/auth"
    OAUTH_GOOGLE_TOKEN_URL: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    OAUTH_GOOGLE_USERINFO_URL: str = "https://openidconnect.googleapis.com/v1/userinfo"
    OAUTH_GITHUB_AUTHORIZE_URL: str = "https://github.com/login/oauth/authorize"
    OAUTH_GITHUB_TOKEN_URL: str = "https://github.com/login/oauth/access_token"  # noqa: S105
    OAUTH_GITHUB_USER_URL: str = "https://api.github.com/user"
    OAUTH_GITHUB_EMAILS_URL: str = "https://api.github.com/user/emails"
    # Each call to a provider (code exchange, profile) gives up after this long.
    OAUTH_HTTP_TIMEOUT_SECONDS: float = 10.0

    # --- data ----------------------------------------------------------------------------------
    DEFAULT_TIER_NAME: str = "free"
    DEFAULT_PAGE_SIZE: int = 20
    MAX_PAGE_SIZE: int = 100
    ADMIN_NAME: str = "Admin"
    ADMIN_USERNAME: str | None = None
    ADMIN_EMAIL: str | None = None
    ADMIN_PASSWORD: SecretStr | None = None

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def cache_redis(self) -> tuple[str, str | None] | None:
        """(URL, password) of the cache's Redis (see CACHE_REDIS_URL), None when none is set.

        A password inside the URL stays there; the second item is CACHE_REDIS_PASSWORD."""
        if self.CACHE_REDIS_URL:
            return self.CACHE_REDIS_URL, None
        parts = (self.CACHE_REDIS_HOST, self.CACHE_REDIS_PORT, self.CACHE_REDIS_DB)
        if any(part is not None for part in parts) or self.CACHE_REDIS_PASSWORD is not None:
            host = self.CACHE_REDIS_HOST or "127.0.0.1"
            host = f"[{host}]" if ":" in host else host  # an IPv6 literal
            address = f"redis://{host}:{self.CACHE_REDIS_PORT or 6379}/{self.CACHE_REDIS_DB or 0}"
            password = self.CACHE_REDIS_PASSWORD
            return address, password.get_secret_value() if password else None
        if self.REDIS_URL:
            return self.REDIS_URL, None
        return None

    @property
    def max_concurrent_requests(self) -> int:
        if self.MAX_CONCURRENT_REQUESTS is not None:
            return self.MAX_CONCURRENT_REQUESTS
        return self.DATABASE_POOL_SIZE + self.DATABASE_MAX_OVERFLOW + 2

    @property
    def is_production(self) -> bool:
        return self.ENVIRONMENT is Environment.PRODUCTION

    @property
    def docs_enabled(self) -> bool:
        return self.DOCS_ENABLED if self.DOCS_ENABLED is not None else not self.is_production

    @property
    def cookie_secure(self) -> bool:
        if self.COOKIE_SECURE is not None:
            return self.COOKIE_SECURE
        return self.ENVIRONMENT not in (Environment.LOCAL, Environment.PYTEST)

    @cached_property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")


settings = Settings()
