"""What each side of the command line loads: the daemon none of the client's libraries, nor
those of what it may never be asked to do; a client none of the daemon's. Each is imported in
a fresh interpreter, as `sentinel` would."""

from __future__ import annotations

import subprocess
import sys

import pytest


def modules_after(*imports: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `imports`."""
    code = f"import sys, {', '.join(imports)}; print('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def test_the_daemon_loads_no_client() -> None:
    """`sentinel run` imports the CLI, then the daemon: not the HTTP client or its commands."""
    loaded = modules_after("sentinel.cli", "sentinel.cli.local", "sentinel.daemon")
    assert "sentinel.daemon" in loaded
    assert not loaded & {
        "httpx", "sentinel.cli.client", "sentinel.cli.commands", "sentinel.cli.fleet",
        "sentinel.cli.streams", "getpass",
    }  # fmt: skip


def test_the_daemon_loads_what_is_seldom_used_when_it_is_used() -> None:
    """Probes (apscheduler), alerts (apprise), Supervisor's XML-RPC (defusedxml, xmlrpc), the
    OpenAPI document, the web UI's templates (jinja2) and the importer are imported by the
    code that uses them, when it runs."""
    loaded = modules_after("sentinel.cli", "sentinel.cli.local", "sentinel.daemon")
    assert not loaded & {
        "apscheduler", "sentinel.scheduling", "apprise", "defusedxml", "xmlrpc",
        "xmlrpc.client", "sentinel.api.xmlrpc", "sentinel.api.openapi", "sentinel.importer",
        "jinja2", "sentinel.api.ui.pages",
    }  # fmt: skip


@pytest.mark.parametrize("module", ["commands", "streams"])
def test_a_client_loads_no_daemon(module: str) -> None:
    """A client command imports httpx, and none of the daemon's server or config libraries."""
    loaded = modules_after("sentinel.cli", f"sentinel.cli.{module}")
    assert "httpx" in loaded
    assert not loaded & {"sentinel.daemon", "uvicorn", "starlette", "pydantic", "apscheduler"}
