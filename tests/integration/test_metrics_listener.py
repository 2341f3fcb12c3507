"""[metrics] listen: /metrics alone on a listener of its own, for a central Prometheus."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme

from sentinel.auth import hash_password
from tests.integration.conftest import SentinelProcess, child, state_is
from tests.integration.monitoring import metrics_address

Start = Callable[[str], SentinelProcess]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))


def test_only_metrics_any_host_and_the_process_own_metrics(sentinel: Start) -> None:
    """The listener answers /metrics (with sentinel's own process_* metrics) to any Host
    header, and nothing else: not the API, not a command."""
    daemon = sentinel(f"""
        [metrics]
        listen = "127.0.0.1:0"
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("app", "RUNNING"))
    base = f"http://{metrics_address(daemon)}"
    response = httpx.get(base + "/metrics", headers={"Host": "prometheus-named-it.example"})
    assert response.status_code == 200
    text = response.text
    assert 'sentinel_program_up{process="app",program="app",group="app"} 1.0' in text
    assert re.search(r"^process_resident_memory_bytes \d", text, re.MULTILINE)
    assert re.search(r"^process_open_fds \d", text, re.MULTILINE)
    for method, path in (
        ("GET", "/api/v1/programs"),
        ("POST", "/api/v1/programs/app/stop"),
        ("POST", "/RPC2"),
        ("GET", "/healthz"),
    ):
        assert httpx.request(method, base + path).status_code == 404, path
    assert daemon.status("app")["state"] == "RUNNING"


def test_users_and_tls(sentinel: Start, tmp_path: Path) -> None:
    """With users a scrape needs a password, as Prometheus's own web config does; with a
    certificate, it is HTTPS."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    daemon = sentinel(f"""
        [metrics]
        listen = "127.0.0.1:0"
        users = [{{ name = "prometheus", password_hash = "{hash_password("scrape-me")}" }}]
        tls_cert = "{cert_file}"
        tls_key = "{key_file}"
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
    """)
    url = f"https://{metrics_address(daemon)}/metrics"
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_file), timeout=10) as client:
        assert client.get(url).status_code == 401
        assert client.get(url, auth=("prometheus", "wrong")).status_code == 401
        assert client.get(url, auth=("prometheus", "scrape-me")).status_code == 200
    with pytest.raises(httpx.ConnectError):  # a client that does not know the CA refuses it
        httpx.get(url, timeout=5)
