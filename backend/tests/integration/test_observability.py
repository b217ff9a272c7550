"""Readiness of every configured dependency, Prometheus metrics, structured access logs."""

import json
import logging

import pytest

from src.infrastructure.config import settings

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.integration
async def test_liveness_answers_the_document_its_schema_describes(client):
    """`/health` answers stored bytes (nothing validated or serialized per call): they must
    still be the `Health` document OpenAPI promises."""
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}
    schema = (await client.get("/openapi.json")).json()
    answer = schema["paths"]["/health"]["get"]["responses"]["200"]["content"]
    reference = answer["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    document = schema["components"]["schemas"][reference]
    assert set(response.json()) == set(document["properties"]) == set(document["required"])


@pytest.mark.integration
@pytest.mark.parametrize("setting", ["SESSION_BACKEND", "RATE_LIMIT_STORAGE", "TASKIQ_BROKER"])
async def test_ready_is_503_naming_redis_when_a_required_redis_is_down(
    client, monkeypatch, setting
):
    monkeypatch.setattr(settings, setting, "redis")
    monkeypatch.setattr(settings, "REDIS_URL", CLOSED_PORT_REDIS)
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.integration
async def test_ready_is_200_when_redis_is_up(client, monkeypatch, redis_url):
    monkeypatch.setattr(settings, "SESSION_BACKEND", "redis")
    monkeypatch.setattr(settings, "REDIS_URL", redis_url)
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "ok"


@pytest.mark.integration
async def test_a_dead_cache_redis_is_reported_but_not_fatal(client, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_BACKEND", "redis")
    monkeypatch.setattr(settings, "CACHE_REDIS_PORT", 1)
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["cache"] == "unavailable (optional)"


@pytest.mark.integration
async def test_ready_is_503_naming_rabbitmq_when_the_broker_is_down(client, monkeypatch):
    monkeypatch.setattr(settings, "TASKIQ_BROKER", "rabbitmq")
    monkeypatch.setattr(settings, "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/")
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["rabbitmq"] == "unavailable"


def _samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


@pytest.mark.integration
async def test_metrics_expose_requests_latency_and_pool(client):
    await client.get("/api/v1/users/nobody-here")
    await client.get("/api/v1/users/nobody-here/")
    body = (await client.get("/metrics")).text

    requests = _samples(body, "http_requests_total{")
    assert any(
        'route="/api/v1/users/{username}"' in line and 'status="404"' in line for line in requests
    ), "requests are labelled by route template, not raw path"
    assert not any("nobody-here" in line for line in requests)
    assert _samples(body, "http_request_duration_seconds_bucket{")
    assert "rate_limit_rejections_total" in body
    assert "tasks_total" in body


@pytest.mark.integration
async def test_metrics_token_guards_the_endpoint(client, monkeypatch):
    monkeypatch.setattr(settings, "METRICS_TOKEN", "scrape-secret")
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    good = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert good.status_code == 200


@pytest.mark.integration
async def test_metrics_are_not_public_in_production_without_a_token(client, monkeypatch):
    from src.infrastructure.config import Environment

    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.PRODUCTION)
    assert (await client.get("/metrics")).status_code == 404


@pytest.mark.integration
async def test_access_log_is_json_with_request_id_and_route(client, monkeypatch, capsys):
    from src.infrastructure.logging.setup import configure_logging

    monkeypatch.setattr(settings, "LOG_JSON", True)
    configure_logging()
    try:
        response = await client.get("/health", headers={"X-Request-ID": "trace-me-123"})
        logging.getLogger().handlers[-1].flush()
        lines = [line for line in capsys.readouterr().err.splitlines() if "trace-me-123" in line]
    finally:
        monkeypatch.setattr(settings, "LOG_JSON", None)
        configure_logging()
    assert response.status_code == 200
    record = json.loads(lines[-1])
    assert record["request_id"] == "trace-me-123"
    assert record["route"] == "/health"
    assert record["status"] == 200
    assert "duration_ms" in record


@pytest.mark.integration
async def test_responses_are_gzipped_when_large_and_asked_for(client):
    response = await client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == "gzip"


@pytest.mark.integration
async def test_tasks_are_counted(committed_client):
    from src.infrastructure.taskiq import default_broker
    from src.infrastructure.taskiq.brokers import drain
    from tests.helpers.factories import build_user_create_payload

    response = await committed_client.post("/api/v1/users", json=build_user_create_payload())
    assert response.status_code == 201
    await drain(default_broker)
    body = (await committed_client.get("/metrics")).text
    counted = {line.split("{")[1].split("}")[0] for line in _samples(body, "tasks_total{")}
    assert any('outcome="enqueued"' in labels for labels in counted)
    assert any('outcome="succeeded"' in labels for labels in counted)


@pytest.mark.integration
async def test_ready_reuses_its_redis_client_and_caches_its_result(client, monkeypatch):
    """Load on /health/ready never becomes load on the dependencies: a private Redis sees one
    connection however often readiness is asked, and concurrent or repeated calls within
    READY_CACHE_SECONDS share one check."""
    import asyncio

    from redis.asyncio import Redis

    from src.interfaces import health
    from tests.helpers.servers import private_redis

    with private_redis() as server:
        monkeypatch.setattr(settings, "SESSION_BACKEND", "redis")
        monkeypatch.setattr(settings, "REDIS_URL", server.url)
        checks = 0
        real_check_all = health._check_all

        async def counted(db):
            nonlocal checks
            checks += 1
            return await real_check_all(db)

        monkeypatch.setattr(health, "_check_all", counted)
        probe = Redis.from_url(server.url)

        async def connections_so_far() -> int:
            return int((await probe.info("stats"))["total_connections_received"])

        try:
            before = await connections_so_far()
            health._last.expires = 0.0  # nothing cached from an earlier test
            burst = await asyncio.gather(*(client.get("/health/ready") for _ in range(20)))
            assert checks == 1
            for _ in range(3):  # expired each time: a real check per call, on the same client
                health._last.expires = 0.0
                assert (await client.get("/health/ready")).status_code == 200
            opened = await connections_so_far() - before
        finally:
            await probe.aclose()

    assert {r.status_code for r in burst} == {200}
    assert checks == 4
    assert opened == 1  # the app's shared client, once
