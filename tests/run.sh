#!/usr/bin/env bash
# Installs everything the tests need (Debian packages for the real components, the Python
# package with its [test] extra in .venv), then runs lint, types, import contracts and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    python3-venv
    prometheus  # promtool, and the real Prometheus server the metrics tests start
    prometheus-alertmanager  # amtool, and the real Alertmanager the fleet test routes alerts through
    monitoring-plugins-basic  # check_http, check_tcp as exec probes
    redis-server  # the bundled redis_ping check against the real thing
    postgresql  # the bundled postgres_ready check against the real thing
    systemd  # systemd-analyze verify / security of the shipped unit; systemd-notify, a program speaking sd_notify
    faketime  # libfaketime: steps of the daemon's wall clock, under a real sentinel run
    chromium  # the web UI's tests drive it with Playwright (no browser download)
)

if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${DEBIAN_PACKAGES[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

echo "--- ruff"
ruff check .
ruff format --check .
echo "--- mypy"
mypy
echo "--- import contracts"
lint-imports
echo "--- pytest"
export SENTINEL_REQUIRE_ALL=1  # a missing real component is a failure, not a skip
exec python -m pytest "$@"
