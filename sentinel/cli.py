"""The command line: `sentinel run` is the daemon; every other command is a client of its API.

Client commands find the daemon through -s/--server (a socket path or an http URL), then
$SENTINEL_SERVER, then the config's [control] socket. Exit codes: 0 ok, 1 a named process is
not in the wanted state, 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from sentinel import __version__
from sentinel.config import find_config, load
from sentinel.errors import ConfigError, ControlError
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState

EXIT_OK, EXIT_NOT_IN_STATE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_IN_STATE if args.command == "check-config" else EXIT_USAGE
    except ControlError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentinel", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    # -c and -s go before the command (as supervisorctl takes them) or after it; after it,
    # SUPPRESS keeps a subcommand from resetting what was given before it.
    for options, default in ((parser, None), (common, argparse.SUPPRESS)):
        options.add_argument(
            "-c",
            "--config",
            default=default,
            help="config file (default: ./sentinel.toml, then /etc/sentinel/sentinel.toml)",
        )
        options.add_argument(
            "-s",
            "--server",
            default=default,
            help="the daemon: a unix socket path or an http URL "
            "(default: $SENTINEL_SERVER, then the config's [control] socket)",
        )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    command("run", _run, "run the daemon in the foreground")
    command("check-config", _check_config, "validate the config and print the processes")
    p = command("status", _status, "show the state of processes")
    p.add_argument("names", nargs="*", metavar="NAME|GROUP:*")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per process")
    for verb, what in (("start", "start"), ("stop", "stop"), ("restart", "restart")):
        p = command(verb, _control, f"{what} processes and wait until they are there")
        p.add_argument("names", nargs="+", metavar="NAME|GROUP:*|all")
        p.add_argument("--no-wait", action="store_true", help="return once asked, not when done")
    p = command("signal", _signal, "send a signal to processes")
    p.add_argument("signal", metavar="SIG")
    p.add_argument("names", nargs="+", metavar="NAME|GROUP:*|all")
    p = command("tail", _tail, "show the end of a process's output")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("--stderr", action="store_true", help="the stderr log instead of stdout")
    p = command("events", _events, "print recent events; with -f, follow the stream")
    p.add_argument("-f", "--follow", action="store_true")
    command("notify-test", _notify_test, "send a test alert to every configured URL")
    command(
        "hash-password",
        _hash_password,
        "read a password on stdin (not echoed on a terminal), print its hash for [control] users",
    )
    p = command("import-supervisord", _import_supervisord, "supervisord.conf -> sentinel TOML")
    p.add_argument("file", metavar="FILE", help="supervisord.conf (its [include] files follow)")
    p.add_argument("-o", "--output", metavar="OUT", help="write OUT (default: stdout)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    command("reload", _reload, "re-read the config; restart only what changed")
    command("shutdown", _shutdown, "stop every process, then the daemon")
    return parser


# --- the daemon and the config ----------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    # Imported here: client commands start faster without the daemon's imports (uvicorn).
    from sentinel.daemon import run  # noqa: PLC0415

    return run(args.config)


def _check_config(args: argparse.Namespace) -> int:
    from sentinel import notify  # noqa: PLC0415 (apprise is slow to import; only this needs it)

    config = load(find_config(args.config))
    notify.check(config)
    print(f"{config.path}: ok, {len(config.processes)} processes")
    rows: list[tuple[str, ...]] = [("NAME", "GROUP", "PRIORITY", "AUTOSTART", "COMMAND")]
    for spec in sorted(config.processes, key=lambda p: (p.priority, p.name)):
        s = spec.settings
        rows.append(
            (spec.name, spec.group, str(s.priority), str(s.autostart).lower(), " ".join(s.command))
        )
    _print_table(rows)
    return EXIT_OK


def _notify_test(args: argparse.Namespace) -> int:
    from sentinel.notify import send_test  # noqa: PLC0415 (apprise: see _check_config)

    config = load(find_config(args.config))
    if not config.notify.urls and config.notify.config is None:
        print(
            f"{config.path}: [notify] has no urls and no config: nothing to test", file=sys.stderr
        )
        return EXIT_USAGE
    results = asyncio.run(send_test(config.notify))
    for url, ok in results:
        print(f"{'ok    ' if ok else 'FAILED'}  {url}")
    return EXIT_OK if all(ok for _, ok in results) else EXIT_NOT_IN_STATE


def _hash_password(_: argparse.Namespace) -> int:
    from sentinel.auth import hash_password  # noqa: PLC0415 (only this command needs it)

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("sentinel: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("sentinel: an empty password is not a password", file=sys.stderr)
        return EXIT_USAGE
    print(hash_password(password))
    return EXIT_OK


def _import_supervisord(args: argparse.Namespace) -> int:
    from sentinel.importer import main as import_supervisord  # noqa: PLC0415 (only this needs it)

    return import_supervisord(args.file, args.output, args.force)


# --- client commands --------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.names:
            processes = [p for n in args.names for p in _selected(client, n)]
        else:
            processes = _snapshots(_request(client, "GET", "/api/v1/programs").json())
    if args.json:
        print(json.dumps([p.to_dict() for p in processes], indent=2))
    else:
        _print_table([(p.name, p.state.name, _describe(p)) for p in processes])
    not_running = [p for p in processes if p.state is not ProcessState.RUNNING]
    return EXIT_NOT_IN_STATE if args.names and not_running else EXIT_OK


def _control(args: argparse.Namespace) -> int:
    verb = args.command
    failed = False
    with _client(args, timeout=None) as client:
        for name in args.names:
            path = _command_path(name, verb) + ("?wait=false" if args.no_wait else "")
            answer = _request(client, "POST", path).json()
            for process in _snapshots(answer["processes"]):
                ok = answer["results"][process.name]
                failed |= not ok
                print(f"{process.name}: {_outcome(verb, ok, args.no_wait, process)}")
    return EXIT_NOT_IN_STATE if failed else EXIT_OK


def _signal(args: argparse.Namespace) -> int:
    failed = False
    with _client(args) as client:
        for name in args.names:
            answer = _request(
                client, "POST", _command_path(name, "signal"), params={"signal": args.signal}
            ).json()
            for process_name, ok in answer["results"].items():
                failed |= not ok
                print(f"{process_name}: {'signalled' if ok else 'ERROR (not running)'}")
    return EXIT_NOT_IN_STATE if failed else EXIT_OK


def _tail(args: argparse.Namespace) -> int:
    stream = "stderr" if args.stderr else "stdout"
    base = f"/api/v1/programs/{args.name}/log"
    with _client(args, timeout=None if args.follow else 10) as client:
        if not args.follow:
            sys.stdout.buffer.write(
                _request(client, "GET", base, params={"stream": stream}).content
            )
            return EXIT_OK
        for data in _sse(client, f"{base}/follow", {"stream": stream}):
            sys.stdout.write(data["data"])
            sys.stdout.flush()
    return EXIT_OK


def _events(args: argparse.Namespace) -> int:
    params = {"history": "100", "follow": "true" if args.follow else "false"}
    with _client(args, timeout=None if args.follow else 10) as client:
        for event in _sse(client, "/api/v1/events", params):
            print(json.dumps(event), flush=True)
    return EXIT_OK


def _reload(args: argparse.Namespace) -> int:
    with _client(args, timeout=None) as client:
        # 400: the new config was rejected, and the body says why
        body = _request(client, "POST", "/api/v1/reload", accept=(400,)).json()
    if not body.get("ok"):
        print(
            f"reload rejected, the running config is unchanged:\n{body['error']}", file=sys.stderr
        )
        return EXIT_NOT_IN_STATE
    for key in ("added", "removed", "changed"):
        print(f"{key}: {', '.join(body[key]) or '-'}")
    return EXIT_OK


def _shutdown(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _request(client, "POST", "/api/v1/shutdown")
    print("shutting down")
    return EXIT_OK


# --- talking to the daemon --------------------------------------------------------------------


def _client(args: argparse.Namespace, timeout: float | None = 10.0) -> httpx.Client:
    server = args.server or os.environ.get("SENTINEL_SERVER")
    if server is None:
        server = str(load(find_config(args.config)).socket_path)
    if server.startswith(("http://", "https://")):
        return httpx.Client(base_url=server, timeout=timeout)
    transport = httpx.HTTPTransport(uds=server)
    return httpx.Client(transport=transport, base_url="http://sentinel", timeout=timeout)


def _request(
    client: httpx.Client, method: str, path: str, accept: tuple[int, ...] = (), **kwargs: Any
) -> httpx.Response:
    """The daemon's answer; an error status (other than those in `accept`) or no answer is a
    ControlError."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise ControlError(f"cannot reach the daemon at {_where(client)}: {exc}") from exc
    if response.status_code >= 400 and response.status_code not in accept:
        try:
            message = response.json()["error"]
        except (ValueError, KeyError):
            message = response.text
        raise ControlError(message)
    return response


def _sse(client: httpx.Client, path: str, params: dict[str, str]) -> Iterator[Any]:
    try:
        with client.stream("GET", path, params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise ControlError(response.json().get("error", response.text))
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[6:])
    except httpx.TransportError as exc:
        raise ControlError(f"cannot reach the daemon at {_where(client)}: {exc}") from exc


def _where(client: httpx.Client) -> str:
    transport = getattr(client, "_transport", None)
    pool = getattr(transport, "_pool", None)
    return str(getattr(pool, "_uds", None) or client.base_url)


def _selected(client: httpx.Client, name: str) -> list[ProcessSnapshot]:
    """The processes NAME, GROUP:NAME, GROUP:* or all select, as the API describes them."""
    group, sep, process = name.partition(":")
    if name != "all" and not (sep and process == "*"):
        path = f"/api/v1/programs/{process if sep else name}"
        return _snapshots([_request(client, "GET", path).json()])
    everything = _snapshots(_request(client, "GET", "/api/v1/programs").json())
    if name == "all":
        return everything
    chosen = [p for p in everything if p.group == group]
    if not chosen:
        raise ControlError(f"no such group: {group}")
    return chosen


def _command_path(name: str, verb: str) -> str:
    group, sep, process = name.partition(":")
    if name == "all":
        return f"/api/v1/all/{verb}"
    if sep and process == "*":
        return f"/api/v1/groups/{group}/{verb}"
    return f"/api/v1/programs/{process if sep else name}/{verb}"


def _snapshots(raw: Any) -> list[ProcessSnapshot]:
    try:
        return [ProcessSnapshot.from_dict(item) for item in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise ControlError(f"the daemon answered something unexpected ({exc!r})") from exc


def _outcome(verb: str, ok: bool, no_wait: bool, process: ProcessSnapshot) -> str:
    if no_wait:
        return f"{verb} requested"
    if ok:
        return {"start": "started", "stop": "stopped", "restart": "restarted"}[verb]
    return f"ERROR ({process.state.name}: {process.detail or 'no detail'})"


def _describe(process: ProcessSnapshot) -> str:
    text = _describe_state(process)
    if process.configured_probes:
        ready = "ready" if process.ready else "not ready"
        last = process.failing_probes  # what failed, and what passed with a (Nagios) warning
        text += f" [{process.health.value}, {ready}{'; ' + last if last else ''}]"
    return text


def _describe_state(process: ProcessSnapshot) -> str:
    if process.pid is not None:
        up = int(process.uptime_seconds)
        return f"pid {process.pid}, uptime {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}"
    if process.state is ProcessState.BACKOFF:
        return f"{process.detail}; retry in {process.backoff_remaining_seconds:.3g}s"
    return process.detail


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


if __name__ == "__main__":
    sys.exit(main())
