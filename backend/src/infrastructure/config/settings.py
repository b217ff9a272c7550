"""Application settings, read once from the environment and `.env` (pydantic-settings).

Every variable has a `Field` description: `scripts/settings_reference.py` turns them into
`backend/.env.example` and docs/configuration.md (CI fails when either is stale). The
defaults are the embedded profile: a SQLite file, in-process stores, no external service.
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


TelemetryMode = Literal["auto", "on", "off"]
"""`FASTAPI_TELEMETRY`: see `infrastructure/observability/otel.py`."""


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
    APP_NAME: str = Field(
        "FastAPI Boilerplate",
        description="The API's title; also the issuer name authenticator apps show next to an "
        "MFA account.",
    )
    APP_VERSION: str = Field("0.1.0", description="The version the OpenAPI document shows.")
    ENVIRONMENT: Environment = Field(
        Environment.LOCAL,
        description="production turns on "
        "the validator that refuses insecure settings; local and development migrate and seed "
        "at `app serve`; pytest ignores `.env` and uses cheap password hashes.",
    )
    SINGLE_PROCESS: bool = Field(
        False,
        description="true: this deployment is one process (`app serve --workers 1`, one host), "
        "so production accepts per-process state (SQLite, in-memory sessions, rate limits, "
        "cache, task broker) and refuses `--workers N>1`.",
    )
    SECRET_KEY: SecretStr = Field(
        SecretStr(DEFAULT_SECRET_KEY),
        description="Keys session and token hashes, CSRF signatures and the MFA encryption. "
        "Production refuses the default or a weak key; generate one with "
        '`python -c "import secrets; print(secrets.token_urlsafe(48))"`. Changing it ends every '
        "session, voids emailed links and makes stored MFA secrets unusable.",
    )
    DOCS_ENABLED: bool | None = Field(
        None,
        description="Swagger UI (`/docs`), ReDoc and `/openapi.json`; empty = on everywhere "
        "except production.",
    )
    ADMIN_ENABLED: bool = Field(
        True,
        description="The admin panel at `/admin` (src/interfaces/admin): superusers and holders "
        "of `admin.access` sign in with their account.",
    )
    MAX_REQUEST_BODY_BYTES: int = Field(
        1_048_576, description="Requests with a larger body get 413."
    )
    MAX_CONCURRENT_REQUESTS: int | None = Field(
        None,
        description="Backpressure, per process: requests beyond this many at once wait their "
        "turn (in arrival order) up to REQUEST_QUEUE_TIMEOUT_SECONDS, then get 503 + "
        "Retry-After. Empty: the database pool's connections plus two. 0 = unbounded.",
    )
    REQUEST_QUEUE_TIMEOUT_SECONDS: float = Field(
        5.0, description="How long a request waits for its turn before a 503 (backpressure)."
    )
    GC_YOUNG_THRESHOLD: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="While serving, the garbage collector's youngest-generation threshold: "
        "how many more container objects alive than at its last run start a collection. "
        "Python's default (700 on 3.11 and 3.12) ran one every few requests and a full "
        "collection (~20-40 ms with the event loop stopped) every second under load; "
        "0 = Python's default.",
    )

    # --- database ------------------------------------------------------------------------------
    DATABASE_URL: str = Field(
        "sqlite+aiosqlite:///./data/app.db",
        description="SQLAlchemy async URL. Embedded: `sqlite+aiosqlite:///./data/app.db`; "
        "production: `postgresql+asyncpg://app:PASSWORD@db-host:5432/app`.",
    )
    DATABASE_ECHO: bool = Field(False, description="Log every SQL statement (debugging only).")
    DATABASE_POOL_SIZE: int = Field(
        10,
        description="Pooled connections per process. Size the pool rather than allowing "
        "overflow (docs/performance.md).",
    )
    DATABASE_MAX_OVERFLOW: int = Field(
        0,
        description="Extra connections opened under load and closed on return: under "
        "sustained load they reconnect on every request (a third of a read's CPU).",
    )
    DATABASE_POOL_TIMEOUT: float = Field(
        2.0,
        description="Seconds a request waits for a pooled connection before it answers "
        "503 + Retry-After.",
    )
    DATABASE_POOL_RECYCLE: int = Field(
        1800, description="Seconds after which a pooled connection is replaced."
    )
    DATABASE_POOL_PING_IDLE_SECONDS: float = Field(
        10.0,
        description="A connection idle in the pool for longer than this is pinged before use, "
        "so a restarted database never fails a request; a busy pool never pings. 0 = before "
        "every use; negative = never.",
    )
    DATABASE_POOL_PRE_PING: bool = Field(
        False,
        description="Ping before every use instead (one round trip per request): only for "
        "networks that silently drop connections in use.",
    )

    # --- sessions and cookies ------------------------------------------------------------------
    SESSION_BACKEND: Literal["database", "redis", "memory"] = Field(
        "database",
        description="Where server-side sessions live: database (the user_sessions table), "
        "redis (REDIS_URL; shared, survives restarts) or memory (this process only).",
    )
    SESSION_COOKIE_NAME: str = Field("session", description="Name of the session cookie.")
    SESSION_IDLE_TIMEOUT_SECONDS: int = Field(
        2 * 60 * 60, description="A session ends after this long without requests."
    )
    SESSION_ABSOLUTE_TIMEOUT_SECONDS: int = Field(
        7 * 24 * 60 * 60, description="A session ends this long after login, whatever happens."
    )
    SESSION_TOUCH_INTERVAL_SECONDS: int = Field(
        60,
        description="last_seen is written at most this often, so an authenticated read is "
        "usually read-only.",
    )
    SESSION_MAX_PER_USER: int = Field(
        10, description="Logging in beyond this many sessions ends the least recently used one."
    )
    DEVICE_COOKIE_NAME: str = Field(
        "device",
        description="The signed cookie a browser gets at sign-in: the login throttle never "
        "locks that browser out with the lockouts strangers trigger.",
    )
    DEVICE_COOKIE_MAX_AGE_SECONDS: int = Field(
        365 * 24 * 60 * 60, description="Lifetime of the device cookie."
    )
    MFA_PENDING_COOKIE_NAME: str = Field(
        "mfa_pending",
        description="The pending sign-in cookie (HttpOnly, path /api/v1/auth) an MFA account's "
        "password gets instead of a session.",
    )
    MFA_PENDING_TTL_SECONDS: int = Field(
        default=300,
        gt=0,
        description="Seconds within which POST /api/v1/auth/mfa/verify must complete a pending "
        "sign-in with a TOTP or recovery code.",
    )
    COOKIE_SECURE: bool | None = Field(
        None,
        description="Secure cookies; empty = on everywhere except local and pytest (plain "
        "http dev servers).",
    )
    COOKIE_DOMAIN: str | None = Field(
        None,
        description="Share cookies with subdomains, e.g. `.example.com`; empty = this host only.",
    )

    # --- CSRF (double-submit cookie, bound to the session) -------------------------------------
    CSRF_ENABLED: bool = Field(
        True,
        description="Unsafe requests authenticated by the session cookie must echo the CSRF "
        "cookie in the CSRF header, else 403.",
    )
    CSRF_COOKIE_NAME: str = Field(
        "csrf_token", description="The CSRF cookie, set on any response to a request without it."
    )
    CSRF_HEADER_NAME: str = Field(
        "X-CSRF-Token", description="The header that must carry the CSRF cookie's value."
    )

    # --- passwords -----------------------------------------------------------------------------
    PASSWORD_MIN_LENGTH: int = Field(
        8,
        description="Shortest password the policy accepts (src/modules/user/password_policy.py; "
        "it also refuses white space at the ends, the username or email in the password, "
        "common breached passwords and what zxcvbn scores below 3).",
    )
    PASSWORD_MAX_LENGTH: int = Field(128, description="Longest password the policy accepts.")
    ARGON2_TIME_COST: int = Field(
        2,
        description="argon2id iterations (OWASP minimum 2). Raising a cost rehashes each "
        "password at its owner's next login. The pytest environment uses cheaper values.",
    )
    ARGON2_MEMORY_COST_KIB: int = Field(
        19_456, description="argon2id memory in KiB (OWASP minimum 19 MiB)."
    )
    ARGON2_PARALLELISM: int = Field(1, description="argon2id lanes (OWASP minimum 1).")
    PASSWORD_HASH_THREADS: int = Field(
        0,
        description="Hashes run at once per process, in a thread pool of their own; 0 = one "
        "less than the cores (at least one), so a login flood never takes the event loop's core.",
    )

    # --- network -------------------------------------------------------------------------------
    TRUSTED_PROXY_HOPS: int = Field(
        0,
        description="How many reverse proxies in front of the app append to X-Forwarded-For "
        "(0 = trust none; the client IP is the socket's peer).",
    )
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(
        [],
        description="Browser origins allowed to call the API with credentials, comma separated "
        "(or a JSON list). Never `*`.",
    )
    CORS_ALLOW_CREDENTIALS: bool = Field(True, description="Let the allowed origins send cookies.")

    # --- Redis (sessions, rate limits, tasks in the production profile) ------------------------
    REDIS_URL: str | None = Field(
        None,
        description="Shared state for the production profile, e.g. "
        "`redis://:password@redis-host:6379/0`. Required by every setting set to redis; the "
        "cache uses it too unless CACHE_REDIS_* say otherwise. With SESSION_BACKEND=redis, "
        "start-up and check-config warn when this Redis persists nothing.",
    )

    # --- cache (@cache) ----------------------------------------------------------------------
    CACHE_ENABLED: bool = Field(True, description="false turns `@cache` into a no-op.")
    CACHE_BACKEND: Literal["memory", "redis"] = Field(
        "memory",
        description="memory (this process) or redis. A dead Redis makes cached routes slower, "
        "never failing.",
    )
    CACHE_REDIS_URL: str | None = Field(
        None,
        description="The cache's Redis, first match wins: this; else CACHE_REDIS_HOST / PORT / "
        "DB / PASSWORD when any is set; else REDIS_URL. None of them with CACHE_BACKEND=redis "
        "is refused at start-up.",
    )
    CACHE_REDIS_HOST: str | None = Field(
        None, description="The cache's Redis host (127.0.0.1 when only PORT/DB/PASSWORD are set)."
    )
    CACHE_REDIS_PORT: int | None = Field(
        None, description="The cache's Redis port (6379 when left empty)."
    )
    CACHE_REDIS_DB: int | None = Field(
        None, description="The cache's Redis database number (0 when left empty)."
    )
    CACHE_REDIS_PASSWORD: SecretStr | None = Field(None, description="The cache's Redis password.")
    CACHE_DEFAULT_TTL_SECONDS: int = Field(
        60, description="Lifetime of a cached value when `@cache` names no TTL."
    )
    CACHE_KEY_PREFIX: str = Field("cache:", description="Prefix of every cache key.")

    # --- background tasks (Taskiq) -----------------------------------------------------------
    TASKIQ_BROKER: Literal["memory", "redis", "rabbitmq"] = Field(
        "memory",
        description="memory runs tasks in the web process (embedded profile, tests); redis "
        "(REDIS_URL) and rabbitmq (RABBITMQ_URL) need `app worker` (and `app scheduler` for "
        "periodic tasks).",
    )
    RABBITMQ_URL: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/", description="The broker when TASKIQ_BROKER=rabbitmq."
    )
    TASKIQ_QUEUE_NAME: str = Field(
        "backend-tasks", description="Queue (RabbitMQ) or stream (Redis) of the tasks."
    )
    TASKIQ_MAX_RETRIES: int = Field(
        3, description="A failing task is retried this many times, waiting longer each time."
    )
    TASKIQ_RETRY_DELAY_SECONDS: float = Field(
        1.0, description="The first retry's delay; it doubles at each retry."
    )
    TASKIQ_REDELIVER_AFTER_SECONDS: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Redis broker: a message a worker took and has not acknowledged after this "
        "long (the worker died) is handed to another worker; checked every quarter of it. Live "
        "workers keep their running tasks' messages fresh.",
    )
    OUTBOX_POLL_INTERVAL_SECONDS: float = Field(
        default=1.0,
        gt=0,
        description="How often the outbox relay looks for due rows (a commit that added rows "
        "wakes the relay of its own process at once).",
    )
    OUTBOX_BACKOFF_BASE_SECONDS: float = Field(
        default=1.0,
        gt=0,
        description="A row the broker refused waits this long, then doubling, before the next "
        "attempt.",
    )
    OUTBOX_BACKOFF_MAX_SECONDS: float = Field(
        default=60.0, gt=0, description="The longest wait between two attempts of a row."
    )
    OUTBOX_PUBLISH_TIMEOUT_SECONDS: float = Field(
        default=5.0, gt=0, description="One publish to the broker gives up after this long."
    )
    OUTBOX_CLAIM_SECONDS: float = Field(
        default=60.0,
        gt=0,
        description="A row claimed by a relay that died is taken by another relay after this long.",
    )
    OUTBOX_BATCH_SIZE: int = Field(default=100, gt=0, description="Rows a relay claims at once.")
    OUTBOX_KEEP_SENT_DAYS: int = Field(
        default=7, ge=0, description="Sent outbox rows are deleted after this many days."
    )
    OUTBOX_RELAY_IN_API: bool = Field(
        True,
        description="Run the relay inside the API process too (besides `app worker`): the "
        "commit of a request wakes it, so a task reaches the broker within milliseconds.",
    )

    # --- audit log ---------------------------------------------------------------------------
    # Security events (`audit_events`, docs/audit.md) are kept this many days, then pruned by
    # the daily `audit.prune_events` task, this many rows per transaction.
    AUDIT_RETENTION_DAYS: int = Field(
        default=365, ge=1, description="Audit events older than this many days are pruned daily."
    )
    AUDIT_PRUNE_BATCH_SIZE: int = Field(
        default=1000, ge=1, le=100_000, description="Rows deleted per transaction by the prune."
    )

    # --- email -------------------------------------------------------------------------------
    EMAIL_BACKEND: Literal["console", "smtp"] = Field(
        "console", description="console writes messages to the log; smtp sends them (SMTP_*)."
    )
    EMAIL_FROM: str = Field("no-reply@example.com", description="Sender of every email.")
    SMTP_HOST: str = Field("127.0.0.1", description="SMTP server host.")
    SMTP_PORT: int = Field(587, description="SMTP server port.")
    SMTP_USERNAME: str | None = Field(None, description="SMTP login; empty = no login.")
    SMTP_PASSWORD: SecretStr | None = Field(None, description="SMTP password.")
    SMTP_STARTTLS: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    SMTP_TIMEOUT_SECONDS: float = Field(10.0, description="Seconds an SMTP exchange may take.")
    FRONTEND_URL: str = Field(
        "http://localhost:8000",
        description="The frontend: where emailed links point (pages `/verify-email`, "
        "`/reset-password`, `/confirm-email-change` that post `?token=` to the API) and where "
        "an OAuth sign-in lands.",
    )

    # --- account lifecycle -------------------------------------------------------------------
    EMAIL_VERIFICATION_REQUIRED: bool = Field(
        False,
        description="true: routes that need a verified account (`VerifiedUser`) answer 403 "
        "until the owner followed the verification link.",
    )
    EMAIL_VERIFICATION_TOKEN_TTL_SECONDS: int = Field(
        48 * 60 * 60,
        description="Lifetime of an email verification link (single use; void once the email "
        "changes).",
    )
    PASSWORD_RESET_TOKEN_TTL_SECONDS: int = Field(
        60 * 60,
        description="Lifetime of a password reset link (single use; void once the password "
        "changes).",
    )
    EMAIL_CHANGE_TOKEN_TTL_SECONDS: int = Field(
        24 * 60 * 60, description="Lifetime of an email change confirmation link."
    )

    # --- rate limits -------------------------------------------------------------------------
    RATE_LIMIT_ENABLED: bool = Field(True, description="false turns the per-route limits off.")
    RATE_LIMIT_STORAGE: Literal["memory", "redis"] = Field(
        "memory",
        description="memory (this process) or redis (REDIS_URL; one limit across every worker "
        "and host).",
    )
    RATE_LIMIT_DEFAULT: str = Field(
        "120/minute",
        description="Limit of a signed-in caller where no tier/route rule matches, in `limits` "
        'notation ("<count>/<second|minute|hour|day>").',
    )
    RATE_LIMIT_ANONYMOUS: str = Field(
        "60/minute", description="Limit of an anonymous caller, per client IP."
    )
    RATE_LIMIT_SYNC_INTERVAL_SECONDS: float = Field(
        0.25,
        description="Redis storage: each process admits hits from a local allowance and "
        "settles them with Redis at least this often; limits under 100 per window and the last "
        "10% of a budget are always exact. 0 = one Redis round trip per request.",
    )

    # --- logging and metrics -----------------------------------------------------------------
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level logged."
    )
    LOG_JSON: bool | None = Field(
        None, description="JSON lines; empty = human-readable in local, JSON everywhere else."
    )
    LOG_ACCESS: bool = Field(
        True,
        description="One structured line per request (method, route, status, duration, "
        "request id).",
    )
    METRICS_ENABLED: bool = Field(True, description="Serve Prometheus metrics at `/metrics`.")
    METRICS_TOKEN: SecretStr | None = Field(
        None,
        description="When set, `/metrics` needs `Authorization: Bearer <token>`; production "
        "requires it or METRICS_PORT.",
    )
    METRICS_PORT: int | None = Field(
        None,
        description="Serve `/metrics` on this separate port instead (keep it off the public "
        "network).",
    )
    FASTAPI_TELEMETRY: TelemetryMode = Field(
        "auto",
        description="FastAPI's native OpenTelemetry (a span, metrics and logs per request, sent "
        "by an SDK you set up). auto = on when OpenTelemetry is set up as the app starts (an "
        "SDK provider installed, e.g. by opentelemetry-instrument, or an OTEL_* variable set), "
        "else off; on = FastAPI checks for a provider on every request.",
    )

    # --- OAuth sign-in (Google, GitHub) -------------------------------------------------------
    OAUTH_REDIRECT_BASE_URL: str | None = Field(
        None,
        description="The public origin providers send the browser back to: register "
        "`<this>/api/v1/auth/oauth/<provider>/callback`. Empty = the origin the request came "
        "in on (set it behind a TLS-terminating proxy).",
    )
    OAUTH_GOOGLE_CLIENT_ID: str | None = Field(
        None,
        description="Google sign-in is offered (and its routes exist) only when the client id "
        'and secret are both set. A client of type "Web application".',
    )
    OAUTH_GOOGLE_CLIENT_SECRET: SecretStr | None = Field(
        None, description="Google OAuth client secret."
    )
    OAUTH_GITHUB_CLIENT_ID: str | None = Field(
        None,
        description="GitHub sign-in is offered only when the client id and secret are both "
        "set (a GitHub OAuth app).",
    )
    OAUTH_GITHUB_CLIENT_SECRET: SecretStr | None = Field(
        None, description="GitHub OAuth client secret."
    )
    OAUTH_GOOGLE_AUTHORIZE_URL: str = Field(
        "https://accounts.google.com/o/oauth2/v2/auth",
        description="Google's authorization endpoint (override only to test or proxy).",
    )
    OAUTH_GOOGLE_TOKEN_URL: str = Field(
        "https://oauth2.googleapis.com/token",
        description="Google's token endpoint.",
    )
    OAUTH_GOOGLE_USERINFO_URL: str = Field(
        "https://openidconnect.googleapis.com/v1/userinfo",
        description="Google's userinfo endpoint.",
    )
    OAUTH_GITHUB_AUTHORIZE_URL: str = Field(
        "https://github.com/login/oauth/authorize",
        description="GitHub's authorization endpoint.",
    )
    OAUTH_GITHUB_TOKEN_URL: str = Field(
        "https://github.com/login/oauth/access_token",
        description="GitHub's token endpoint.",
    )
    OAUTH_GITHUB_USER_URL: str = Field(
        "https://api.github.com/user", description="GitHub's user endpoint."
    )
    OAUTH_GITHUB_EMAILS_URL: str = Field(
        "https://api.github.com/user/emails", description="GitHub's user emails endpoint."
    )
    OAUTH_HTTP_TIMEOUT_SECONDS: float = Field(
        10.0, description="Each call to a provider (code exchange, profile) gives up after this."
    )

    # --- data ----------------------------------------------------------------------------------
    DEFAULT_TIER_NAME: str = Field(
        "free", description="New users join this tier; `app seed` and `app serve` create it."
    )
    DEFAULT_PAGE_SIZE: int = Field(20, description="Items per page when a list asks for none.")
    MAX_PAGE_SIZE: int = Field(100, description="Largest page a list serves.")
    ADMIN_NAME: str = Field("Admin", description="Default name for `app create-superuser`.")
    ADMIN_USERNAME: str | None = Field(
        None, description="Default username for `app create-superuser`."
    )
    ADMIN_EMAIL: str | None = Field(None, description="Default email for `app create-superuser`.")
    ADMIN_PASSWORD: SecretStr | None = Field(
        None,
        description="Default password for `app create-superuser`; must pass the password "
        "policy, else the command exits 1 naming the rule.",
    )

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
