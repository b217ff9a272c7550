import pytest

from src.infrastructure.config import Environment, Settings
from src.infrastructure.security.validator import (
    InsecureSettingsError,
    find_problems,
    validate_settings,
)

STRONG = "kP3v9sQ2xZ8mN4bT7wY1cR6hJ0fL5gD2aE9uI3oS"


def _production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "ENVIRONMENT": Environment.PRODUCTION,
        "SECRET_KEY": STRONG,
        "DATABASE_URL": "postgresql+asyncpg://app:s3cr3t-Pa55@db:5432/app",
        "RATE_LIMIT_STORAGE": "redis",
        "CACHE_BACKEND": "redis",
        "TASKIQ_BROKER": "redis",
        "REDIS_URL": "redis://:pw@redis:6379/0",
        "EMAIL_BACKEND": "smtp",
        "FRONTEND_URL": "https://app.example.com",
    }
    return Settings(**(values | overrides))


@pytest.mark.unit
def test_strong_production_settings_pass():
    assert find_problems(_production()) == []
    validate_settings(_production())


@pytest.mark.unit
@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"SECRET_KEY": "insecure-default-secret-key-change-me"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "a" * 64}, "SECRET_KEY"),
        ({"DATABASE_URL": "postgresql+asyncpg://postgres:postgres@db/app"}, "database password"),
        ({"DATABASE_URL": "postgresql+asyncpg://postgres@db/app"}, "database password"),
        ({"CORS_ORIGINS": ["*"]}, "CORS"),
        ({"COOKIE_SECURE": False}, "COOKIE_SECURE"),
        ({"CSRF_ENABLED": False}, "CSRF"),
        ({"SESSION_BACKEND": "memory"}, "SESSION_BACKEND"),
        ({"RATE_LIMIT_STORAGE": "memory"}, "RATE_LIMIT_STORAGE"),
        ({"DATABASE_URL": "sqlite+aiosqlite:///./data/app.db"}, "SQLite"),
        ({"CACHE_BACKEND": "memory"}, "CACHE_BACKEND"),
        ({"TASKIQ_BROKER": "memory"}, "TASKIQ_BROKER"),
        ({"RATE_LIMIT_ENABLED": False}, "RATE_LIMIT_ENABLED"),
        ({"EMAIL_BACKEND": "console"}, "EMAIL_BACKEND"),
        ({"FRONTEND_URL": "http://app.example.com"}, "FRONTEND_URL"),
        ({"FRONTEND_URL": "https://localhost:3000"}, "FRONTEND_URL"),
    ],
)
def test_production_refuses_insecure_settings(overrides, needle):
    with pytest.raises(InsecureSettingsError, match=needle):
        validate_settings(_production(**overrides))


@pytest.mark.unit
def test_single_process_accepts_per_process_state_in_production():
    per_process = {
        "DATABASE_URL": "sqlite+aiosqlite:///./data/app.db",
        "SESSION_BACKEND": "memory",
        "RATE_LIMIT_STORAGE": "memory",
        "CACHE_BACKEND": "memory",
        "TASKIQ_BROKER": "memory",
    }
    refused = find_problems(_production(**per_process))
    [problem] = refused
    assert problem.startswith("per-process state: DATABASE_URL is SQLite")
    assert all(name in problem for name in per_process)
    assert "SINGLE_PROCESS=true" in problem
    assert find_problems(_production(SINGLE_PROCESS=True, **per_process)) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"REDIS_URL": "redis://:pw@shared:6379/2"},
            ("redis://:pw@shared:6379/2", None),
            id="redis-url",
        ),
        pytest.param(
            {"REDIS_URL": "redis://shared:6379/2", "CACHE_REDIS_URL": "redis://cache:6379/5"},
            ("redis://cache:6379/5", None),
            id="cache-url-first",
        ),
        pytest.param(
            {
                "REDIS_URL": "redis://shared:6379/2",
                "CACHE_REDIS_HOST": "cache",
                "CACHE_REDIS_PASSWORD": "pw",
            },
            ("redis://cache:6379/0", "pw"),
            id="host-parts",
        ),
        pytest.param(
            {"REDIS_URL": "redis://shared/1", "CACHE_REDIS_DB": 3},
            ("redis://127.0.0.1:6379/3", None),
            id="db-only",
        ),
        pytest.param({}, None, id="none"),
    ],
)
def test_the_cache_finds_its_redis(values, expected):
    blank = dict.fromkeys(
        (
            "REDIS_URL",
            "CACHE_REDIS_URL",
            "CACHE_REDIS_HOST",
            "CACHE_REDIS_PORT",
            "CACHE_REDIS_DB",
            "CACHE_REDIS_PASSWORD",
        )
    )
    assert Settings(**(blank | values)).cache_redis == expected


@pytest.mark.unit
def test_a_redis_cache_with_no_redis_named_is_refused_everywhere():
    blank = dict.fromkeys(
        ("REDIS_URL", "CACHE_REDIS_URL", "CACHE_REDIS_HOST", "CACHE_REDIS_PORT", "CACHE_REDIS_DB")
    )
    others = {"SESSION_BACKEND": "database", "RATE_LIMIT_STORAGE": "memory"}
    others |= {"TASKIQ_BROKER": "memory"}
    settings = Settings(**blank, **others, CACHE_BACKEND="redis", ENVIRONMENT="local")
    problems = find_problems(settings)
    assert problems == [
        "CACHE_BACKEND=redis but none of CACHE_REDIS_URL, CACHE_REDIS_HOST or REDIS_URL is set"
    ]


@pytest.mark.unit
@pytest.mark.parametrize("environment", ["local", "development", "staging", "pytest"])
def test_validator_is_skipped_outside_production(environment):
    assert find_problems(Settings(ENVIRONMENT=environment, SECRET_KEY="weak")) == []


@pytest.mark.unit
def test_cors_origins_accept_a_comma_separated_env_value(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().CORS_ORIGINS == ["https://a.example", "https://b.example"]


@pytest.mark.unit
def test_unknown_environment_is_refused():
    with pytest.raises(ValueError, match="ENVIRONMENT"):
        Settings(ENVIRONMENT="prod")


@pytest.mark.unit
@pytest.mark.parametrize("setting", ["SESSION_BACKEND", "RATE_LIMIT_STORAGE", "TASKIQ_BROKER"])
def test_a_redis_backend_without_redis_url_is_refused_everywhere(setting):
    local = {
        "SESSION_BACKEND": "database",
        "RATE_LIMIT_STORAGE": "memory",
        "TASKIQ_BROKER": "memory",
    }
    problems = find_problems(
        Settings(ENVIRONMENT="local", REDIS_URL=None, **(local | {setting: "redis"}))
    )
    assert problems == [f"{setting} set to redis but REDIS_URL is empty"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("unix:///run/redis.sock", True),
        ("memory://", True),
        ("redis://127.0.0.1:6379/0", False),
        ("rediss://cache.example:6380/0", False),
    ],
)
def test_redis_rate_limits_need_a_url_the_limiter_takes(url, refused):
    """Refused when the app starts, not by every request (the limiter is built at startup)."""
    settings = Settings(ENVIRONMENT="local", RATE_LIMIT_STORAGE="redis", REDIS_URL=url)
    problem = "RATE_LIMIT_STORAGE=redis needs a redis:// or rediss:// REDIS_URL"
    assert (problem in find_problems(settings)) is refused
    # Rate limits off: the limiter is never built, so its storage's URL does not matter.
    settings = Settings(
        ENVIRONMENT="local", RATE_LIMIT_STORAGE="redis", REDIS_URL=url, RATE_LIMIT_ENABLED=False
    )
    assert problem not in find_problems(settings)
