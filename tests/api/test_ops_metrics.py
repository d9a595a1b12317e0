"""The operators' /metrics (issue 16), scraped from the real program: off by default (nothing but
the API listens), and with `metrics_listen` set, a listener of its own whose counters move with
the requests, with bounded labels (route patterns, never IDs)."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Server, create_user, free_port, request, write_config

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (from /proc: its sockets' inodes in LISTEN state)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    metrics = f"127.0.0.1:{free_port()}"
    server = Server(write_config(tmp_path, metrics_listen=metrics)).start()
    yield server, f"http://{metrics}/metrics"
    server.stop()


def scrape(url: str) -> dict[str, list[Any]]:
    """Samples by name, parsed with the Prometheus project's own parser."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    server = Server(write_config(tmp_path)).start()
    try:
        assert server.process is not None
        assert listening_ports(server.process.pid) == {int(server.url.rsplit(":", 1)[1])}
        # Nor is /metrics mounted on the API's own listener.
        status, _, _ = request(server.url + "/metrics", "nobody", "nothing", method="GET")
        assert status in (401, 404)
    finally:
        server.stop()


def test_metrics_listen_is_its_own_listener_and_not_on_the_api(server: tuple[Server, str]) -> None:
    api, url = server
    assert api.process is not None
    metrics_port = int(url.split(":")[2].split("/")[0])
    assert listening_ports(api.process.pid) == {int(api.url.rsplit(":", 1)[1]), metrics_port}
    user, secret = create_user(api.config)
    status, _, _ = request(api.url + "/metrics", user, secret, method="GET")
    assert status == 404


def test_counters_move_with_requests_and_labels_are_bounded(server: tuple[Server, str]) -> None:
    api, url = server
    user, secret = create_user(api.config)
    before = scrape(url)
    route = "/drives/{drive}/info"
    assert value(before, "elastic_api_http_requests_total", route=route) == 0

    status, _, body = request(api.url + "/drives/create", user, secret, b"name d\nsize 1M\n")
    assert status == 200, body
    drive = dict(line.split(" ", 1) for line in body.decode().splitlines())["drive"]
    for _ in range(3):
        assert request(f"{api.url}/drives/{drive}/info", user, secret, method="GET")[0] == 200
    assert request(f"{api.url}/drives/{drive}/info", user, "wrong", method="GET")[0] == 401
    assert request(api.url + "/ecs/v2/account", user, secret, method="GET")[0] == 401
    assert request(api.url + "/no/such/" + drive, user, secret, method="GET")[0] == 404
    # A method HTTP knows but no route takes (a WebDAV one): counted, under "other".
    assert request(f"{api.url}/drives/{drive}/info", user, secret, method="PROPFIND")[0] == 405

    after = scrape(url)
    labels = {"dialect": "elastichosts", "route": route, "method": "GET"}
    assert value(after, "elastic_api_http_requests_total", status="200", **labels) == 3
    assert value(after, "elastic_api_http_requests_total", status="401", **labels) == 1
    assert value(after, "elastic_api_http_requests_total", route="/drives/create", status="200") == 1
    assert value(after, "elastic_api_http_requests_total", dialect="ecs", route="/ecs/v2/account", status="401") == 1
    assert value(after, "elastic_api_http_requests_total", method="other", status="405") == 1
    assert value(after, "elastic_api_http_request_duration_seconds_count", **labels) == 4
    assert value(after, "elastic_api_http_request_duration_seconds_bucket", le="+Inf", **labels) == 4
    # The store was timed, reads and writes (the create wrote a row).
    assert value(after, "elastic_api_store_duration_seconds_count", kind="read") > 0
    assert value(after, "elastic_api_store_duration_seconds_count", kind="write") > 0
    # Every gauge is there: the configured host (test:///default, connected), the pool's filesystem, jobs by kind.
    assert value(after, "elastic_api_host_up", host="local") == 1
    assert value(after, "elastic_api_pool_size_bytes") > 0
    assert 0 < value(after, "elastic_api_pool_free_bytes") <= value(after, "elastic_api_pool_size_bytes")
    assert value(after, "elastic_api_pool_used_bytes") > 0
    assert {(s.labels["kind"], s.labels["state"]) for s in after["elastic_api_jobs"]} >= {
        ("image", "queued"),
        ("image", "running"),
    }

    # No label anywhere carries an ID, a user or a raw path.
    for samples in after.values():
        for sample in samples:
            for label in sample.labels.values():
                assert not UUID.search(label) and user not in label, sample
    routes = {s.labels["route"] for s in after["elastic_api_http_requests_total"]}
    # (/drives/list: the probe that waited for the server to answer)
    assert routes <= {route, "/drives/create", "/drives/list", "/ecs/v2/account", "/{path}"}, routes


def test_an_image_job_shows_in_the_jobs_gauge_while_it_runs(server: tuple[Server, str]) -> None:
    """A drive imaged from another: its job is counted by kind and state until it is done."""
    api, url = server
    user, secret = create_user(api.config)
    drives = []
    for name in ("source", "target"):
        status, _, body = request(api.url + "/drives/create", user, secret, f"name {name}\nsize 64M\n".encode())
        assert status == 200, body
        drives.append(dict(line.split(" ", 1) for line in body.decode().splitlines())["drive"])
    status, _, body = request(f"{api.url}/drives/{drives[1]}/image/{drives[0]}", user, secret, b"")
    assert status in (200, 204), body
    deadline = time.monotonic() + 120
    while True:  # the job ends; meanwhile the gauge counted it (or it was done before a scrape)
        samples = scrape(url)
        pending = value(samples, "elastic_api_jobs", kind="image")
        if pending == 0:
            break
        assert pending == 1
        assert time.monotonic() < deadline
        time.sleep(0.05)
    samples = scrape(url)
    assert value(samples, "elastic_api_jobs", kind="image", state="running") == 0
    assert value(samples, "elastic_api_jobs_finished_total", kind="image", state="done") == 1
    assert value(samples, "elastic_api_jobs_finished_total", kind="image", state="failed") == 0
    assert value(samples, "elastic_api_job_duration_seconds_count", kind="image") == 1


def test_metrics_listen_must_differ_from_listen(tmp_path: Path) -> None:
    from elastic_api.config import from_mapping
    from elastic_api.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics_listen"):
        from_mapping({"listen": "127.0.0.1:8080", "metrics_listen": "127.0.0.1:8080"})
    with pytest.raises(ConfigError):
        from_mapping({"metrics_listen": "nonsense"})
    assert from_mapping({"metrics_listen": "127.0.0.1:9108"}).metrics_listen == "127.0.0.1:9108"
    assert from_mapping({}).metrics_listen == ""
