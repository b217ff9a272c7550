"""`app serve --workers 2`: Prometheus multiprocess mode set up by the command itself.

Requests spread over both workers (a new connection each); whichever worker answers
/metrics reports the sum of both, so the request counter grows by exactly the number of
requests sent. The metrics folder is a temporary one, removed when the server stops.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import AppServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 120
# A path nothing else asks for (the start-up polls /health): counted as route "unmatched".
PATH = "/no-such-page"
NOT_FOUND = re.compile(
    r'^http_requests_total\{method="GET",route="unmatched",status="404"\} ([0-9.e+]+)$', re.M
)


def _count(base_url: str) -> float:
    body = httpx.get(f"{base_url}/metrics", timeout=10).text
    found = NOT_FOUND.search(body)
    return float(found.group(1)) if found else 0.0


def test_metrics_add_up_over_the_workers(tmp_path: Path):
    server = AppServer(tmp_path, {"ENVIRONMENT": "local", "LOG_ACCESS": "false"}, workers=2)
    server.start()
    try:
        before = _count(server.base_url)
        assert before == 0

        def hit(_: int) -> int:
            return httpx.get(f"{server.base_url}{PATH}", timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(hit, range(REQUESTS))) == {404}
        counts = {_count(server.base_url) for _ in range(6)}  # asked of either worker
        [folder_line] = [
            line for line in server.output().splitlines() if line.startswith("metrics of the")
        ]
        folder = Path(folder_line.rsplit(" ", 1)[1])
        writers = {path.name for path in folder.glob("counter_*.db")}
    finally:
        server.stop()

    assert counts == {before + REQUESTS}
    assert len(writers) >= 2, writers  # both workers counted requests
    assert "serving http://127.0.0.1:" in server.output()
    assert not folder.exists()
