"""Frozen, validated config models: what a config file means once it has been read.

Every model forbids unknown keys and is immutable; `config.py` turns TOML into these and turns
pydantic's errors into `ConfigError`s that name the file and the key path.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import shlex
import signal
import typing
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from sentinel.auth import check_hash_format

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
# Longer is a typo, and timers and datetimes overflow on durations near float's range.
MAX_DURATION = 10 * 365 * 86400.0
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
# depends_on: a program's name, or GROUP:* (every program of the group)
DEPENDENCY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(:\*)?$"


def parse_duration(value: object) -> float:
    """A duration in seconds, from "250ms", "10s", "5m", "1h", "1d" or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "10s", got {value!r}')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                f'expected a duration like "250ms", "10s", "5m" or "1h", got {value!r}'
            )
        seconds = float(match[1]) * _DURATION_UNITS[match[2]]
    # NaN passes every comparison but ==, so test for the good range rather than the bad one.
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError(f"expected a duration between 0 and 10 years, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """A size in bytes, from "50MB", "1GiB" or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'expected a size like "50MB", "1GiB" or a number of bytes, got {value!r}')
    # A fraction, not a float: "1.1GB" is exact, and a long string of digits is not inf.
    return int(Fraction(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])


def parse_signal(value: object) -> signal.Signals:
    """A signal, from "TERM", "SIGTERM" or a number."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return signal.Signals(value)
        if isinstance(value, str):
            name = value.strip().upper()
            return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        pass
    raise ValueError(f'expected a signal name like "TERM", "INT", "QUIT" or "HUP", got {value!r}')


def parse_umask(value: object) -> int | None:
    """A umask: "022" (octal, as in supervisord and the shell) or an integer."""
    if value is None:
        return None
    try:
        mask = int(value, 8) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        mask = -1
    if not 0 <= mask <= 0o777 or isinstance(value, bool):
        raise ValueError(f'expected an octal umask like "022", got {value!r}')
    return mask


def parse_command(value: object) -> object:
    """A command given as a string is split like a shell would (no shell runs)."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command: {exc}") from exc
    return value


def parse_start_seconds(value: object) -> float | str:
    """start_seconds: a duration, or "notify" (RUNNING on READY=1)."""
    if value == "notify":
        return "notify"
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f'{exc} (or "notify": RUNNING on READY=1)') from None


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class Frozen(BaseModel):
    # Every float must be finite: a NaN multiplier or an infinite jitter is a typo, never a wish.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SentinelSection(Frozen):
    log_dir: str = "logs"
    state_dir: str = "state"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"


RoleName = Literal["viewer", "operator", "admin"]


class Credential(Frozen):
    """A name and a password hash for HTTP basic authentication."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$", max_length=64)
    password_hash: str  # made by `sentinel hash-password`; Supervisor's {SHA} form is accepted

    @field_validator("password_hash")
    @classmethod
    def _a_hash(cls, value: str) -> str:
        return check_hash_format(value)


class User(Credential):
    """A person or a tool that may use the control API over HTTP."""

    role: RoleName = "viewer"


def _host_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'expected "HOST:PORT" like "127.0.0.1:9001", got {value!r}')
    return value


def split_host_port(value: str) -> tuple[str, int]:
    """("host", port) of a checked "HOST:PORT" ("[::1]:9001" -> ("::1", 9001))."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


HostPort = Annotated[str, AfterValidator(_host_port)]


class Listening(Frozen):
    """A TCP listener's TLS settings (both or neither)."""

    tls_cert: str | None = None
    tls_key: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> Listening:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class ControlSection(Listening):
    socket: str = "sentinel.sock"
    socket_mode: Annotated[int, BeforeValidator(parse_umask)] = 0o600  # octal, like umask
    socket_group: str | None = None  # the socket's group, to share it with socket_mode 0660
    http: HostPort | None = None
    users: list[User] = []
    # Callers who give no password: "none", or a role. Default: "viewer" without users,
    # "none" with them.
    anonymous_role: Literal["none", "viewer", "operator", "admin"] | None = None
    allowed_hosts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+$")]] = []

    @field_validator("users")
    @classmethod
    def _unique_names(cls, value: list[User]) -> list[User]:
        names = [user.name for user in value]
        if len(set(names)) != len(names):
            raise ValueError("expected each user once")
        return value

    @model_validator(mode="after")
    def _safe_on_the_network(self) -> ControlSection:
        if self.http is None or self.http_is_loopback:
            return self
        if not self.users:
            raise ValueError(
                f"{self.http!r} is not a loopback address: sentinel serves its control API on "
                'the network only to users with passwords. Add users = [{ name = "ops", '
                'password_hash = "...", role = "operator" }] (`sentinel hash-password` makes '
                'the hash), or listen on "127.0.0.1:PORT"'
            )
        if self.anonymous_role in ("operator", "admin"):
            raise ValueError(
                f"anonymous_role = {self.anonymous_role!r} would let anyone on the network "
                f'change processes through {self.http!r}: use "none" or "viewer"'
            )
        return self

    @property
    def http_host_port(self) -> tuple[str, int] | None:
        return None if self.http is None else split_host_port(self.http)

    @property
    def http_is_loopback(self) -> bool:
        address = self.http_host_port
        return address is not None and is_loopback(address[0])

    @property
    def anonymous(self) -> str:
        """The role of a caller who gives no password (see anonymous_role)."""
        if self.anonymous_role is not None:
            return self.anonymous_role
        return "none" if self.users else "viewer"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LINK_FIELDS = ("process", "program", "group", "event", "host")  # in notify's URL templates


class MetricsSection(Listening):
    """A listener of its own that serves /metrics and nothing else (for a central
    Prometheus: it may listen on the network without exposing the control plane)."""

    listen: HostPort | None = None  # "0.0.0.0:9101"
    # Who may scrape, as Prometheus's web config has basic auth users; without, anyone.
    users: list[Credential] = []

    @property
    def host_port(self) -> tuple[str, int] | None:
        return None if self.listen is None else split_host_port(self.listen)


NotifyEvent = Literal[
    "restart", "backoff", "fatal", "flapping", "unhealthy", "recovered", "rolling"
]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = typing.get_args(NotifyEvent)


class NotifySection(Frozen):
    urls: list[str] = []  # apprise URLs, untagged: every program's alerts go to them
    config: str | None = None  # an apprise config file (YAML or text), for URLs with tags
    events: list[NotifyEvent] = list(NOTIFY_EVENTS)
    cooldown: Duration = 300.0  # same program + event: at most one message per cooldown
    batch: Duration = 5.0  # alerts arriving within this window go out as one digest
    retries: int = Field(default=3, ge=0)  # a failed send is retried, 1s, 2s, 4s... apart
    # Links in every message; {process}, {program}, {group}, {event} and {host} are filled in
    runbook_url: str | None = None  # "https://wiki.example/runbooks/sentinel#{event}"
    dashboard_url: str | None = (
        None  # "https://grafana.example/d/sentinel-overview?var-program={program}"
    )

    @field_validator("runbook_url", "dashboard_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format_map(
                    dict.fromkeys(("process", "program", "group", "event", "host"), "")
                )
            except (KeyError, ValueError, IndexError) as exc:
                raise ValueError(
                    "expected a URL with {process}, {program}, {group}, {event} or {host} "
                    f"in it, got {value!r} ({type(exc).__name__}: {exc})"
                ) from None
        return value


class LogSpec(Frozen):
    # "auto": <log_dir>/<process>.<stream>.log; "none": discard; "inherit" (or /dev/stdout,
    # /dev/stderr): sentinel's own stdout / stderr, for containers; else a file
    path: str = "auto"
    max_bytes: Size = 50 * 10**6
    backups: int = Field(default=10, ge=0)
    prefix: bool = False  # with "inherit": each line starts with "NAME | "


class Backoff(Frozen):
    initial: Duration = 1.0
    max: Duration = 60.0
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    reset_after: Duration = 60.0


def parse_status_ranges(value: object) -> tuple[tuple[int, int], ...]:
    """HTTP statuses: "200-399", "200,204,300-399", 200 or a list of those."""
    items = value if isinstance(value, list | tuple) else [value]
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, list | tuple) and len(item) == 2:  # already parsed: (low, high)
            ranges.append((int(item[0]), int(item[1])))
            continue
        for part in str(item).split(","):
            low, _, high = part.strip().partition("-")
            if not low.isdigit() or not (high or low).isdigit():
                raise ValueError(
                    f'expected HTTP statuses like "200-399" or "200,204", got {value!r}'
                )
            ranges.append((int(low), int(high or low)))
    if not ranges or any(not 100 <= lo <= hi <= 599 for lo, hi in ranges):
        raise ValueError(f"expected HTTP statuses between 100 and 599, got {value!r}")
    return tuple(ranges)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
# Control characters other than tab: RFC 9110 leaves them out of field values, and Go's
# net/http (the kubelet's prober) refuses to send them.
_HEADER_VALUE_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Every probe sends one request without a body and closes its connection after the answer;
# these would contradict that (a body that never comes, a connection kept alive).
_PROBE_OWNED_HEADERS = frozenset({"connection", "content-length", "transfer-encoding"})
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def parse_http_url(value: str) -> str:
    """An http(s) URL in normal form, as the probe sends it: the host in IDNA (punycode), the
    default port left out, the path and query percent-encoded ("/a b" -> "/a%20b")."""
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        reason = error.get("ctx", {}).get("error") or error["msg"]
        raise ValueError(f"expected an http or https URL ({reason}), got {value!r}") from None
    if url.port == 0:
        raise ValueError(
            f"expected an http or https URL with a port from 1 to 65535, got {value!r}"
        )
    return str(url)


class HttpCheck(Frozen):
    # The pattern turns other schemes away first; parse_http_url checks and normalises the rest.
    url: Annotated[str, Field(pattern=r"^https?://"), AfterValidator(parse_http_url)]
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = {}
    expect_status: Annotated[tuple[tuple[int, int], ...], BeforeValidator(parse_status_ranges)] = (
        (200, 399),
    )
    body_contains: str | None = None
    body_regex: str | None = None
    tls_verify: bool = True

    @field_validator("headers")
    @classmethod
    def _header_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"expected a header name (letters, digits, -), got {name!r}")
            if _HEADER_VALUE_CONTROLS.search(text):
                raise ValueError(
                    f"header {name!r}: expected a value without line breaks or control characters"
                )
            if name.lower() in _PROBE_OWNED_HEADERS:
                raise ValueError(
                    f"header {name!r} is the probe's own: each probe sends one request without "
                    "a body and closes the connection"
                )
        # Blanks around a value are not part of it (RFC 9110 5.5) and are not sent.
        return {name: text.strip(" \t") for name, text in value.items()}

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a regular expression: {exc}") from None
        return value


class TcpCheck(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    send: str | None = None  # written after connecting
    expect: str | None = None  # must appear in what comes back


def bundled_checks() -> set[str]:
    """The names of the check scripts shipped in sentinel.checks."""
    try:
        folder = resources.files("sentinel.checks")
    except ModuleNotFoundError:
        return set()
    return {f.name[:-3] for f in folder.iterdir() if f.name.endswith(".py") and f.name[0] != "_"}


class ExecCheck(Frozen):
    command: Annotated[list[str] | None, BeforeValidator(parse_command)] = None
    check: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")  # a bundled check
    args: list[str] = []
    # How the exit code reads: "kubernetes", any non-zero exit fails; "nagios", 1 (WARNING)
    # passes and is reported, 2 and 3 fail. Default: nagios for bundled checks, else kubernetes.
    codes: Literal["kubernetes", "nagios"] | None = None

    @property
    def nagios(self) -> bool:
        return self.codes == "nagios" or (self.codes is None and self.check is not None)

    @field_validator("check")
    @classmethod
    def _bundled(cls, value: str | None) -> str | None:
        if value is not None and value not in bundled_checks():
            known = ", ".join(sorted(bundled_checks())) or "none installed"
            raise ValueError(f"expected a bundled check ({known}), got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> ExecCheck:
        if (self.command is None) == (self.check is None):
            raise ValueError(
                'expected exactly one of "command" (argv) or "check" (a bundled check)'
            )
        if self.command is not None and (not self.command or self.args):
            raise ValueError('"command" is a non-empty argv; "args" goes with "check"')
        return self


class Probe(Frozen):
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    exec: ExecCheck | None = None
    initial_delay: Duration = 0.0
    period: Duration = 10.0
    timeout: Duration = 1.0
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_check(self) -> Probe:
        if sum(c is not None for c in (self.http, self.tcp, self.exec)) != 1:
            raise ValueError("expected exactly one check: http, tcp or exec")
        if self.period <= 0 or self.timeout <= 0:
            raise ValueError("period and timeout must be more than zero")
        return self


class FlappingPolicy(Frozen):
    restarts: int = Field(default=5, ge=1)
    window: Duration = 600.0
    action: Literal["alert", "stop"] = "alert"


class Program(Frozen):
    command: Annotated[list[str], BeforeValidator(parse_command)] = Field(min_length=1)
    directory: str | None = None
    environment: dict[str, str] = {}
    user: str | None = None
    umask: Annotated[int | None, BeforeValidator(parse_umask)] = None
    instances: int = Field(default=1, ge=1, le=10000)
    instances_start: int = Field(default=0, ge=0, le=10**6)  # the first {instance} number
    # The process-name template: "{program}_{instance:02d}". Without it a program's one process
    # is named after it, and n > 1 are "{program}_{instance}"; with it, names stay the same
    # whatever the count (scaling to or from 1 renames nothing).
    name: str | None = None  # each name it makes is checked like a program's
    priority: int = 999
    group: str | None = Field(default=None, pattern=NAME_PATTERN)
    autostart: bool = True
    # When it gives up (FATAL) or ends for good (EXITED), sentinel stops the rest and exits
    # with its status: how a container whose main program died should end.
    essential: bool = False
    autorestart: Literal["always", "on-failure", "never"] = "on-failure"
    exit_codes: list[Annotated[int, Field(ge=0, le=255)]] = [0]
    # Up this long = RUNNING; "notify": RUNNING when the program sends READY=1 (needs notify)
    start_seconds: Annotated[float | Literal["notify"], BeforeValidator(parse_start_seconds)] = 1.0
    start_timeout: Duration = (
        90.0  # with start_seconds = "notify": no READY=1 by then, a failed start
    )
    start_retries: int = Field(default=3, ge=0)
    stop_signal: Annotated[signal.Signals, BeforeValidator(parse_signal)] = signal.SIGTERM
    stop_timeout: Duration = 10.0
    stdout: LogSpec = LogSpec()
    stderr: LogSpec = LogSpec()
    redirect_stderr: bool = False
    backoff: Backoff = Backoff()
    flapping: FlappingPolicy = FlappingPolicy()
    alerts: bool = True  # false: this program sends no alerts
    notify_tags: list[str] = []  # apprise tags its alerts go to; none: every URL
    # Names of programs, or GROUP:*, that must be RUNNING and ready before this one starts
    depends_on: list[Annotated[str, Field(pattern=DEPENDENCY_PATTERN)]] = []
    notify: bool = False  # true: the program gets NOTIFY_SOCKET and speaks sd_notify to sentinel
    watchdog: Duration = 0.0  # with notify: WATCHDOG=1 expected this often, else a restart
    reload: Literal["restart", "rolling"] = "restart"  # how a reload restarts a changed program
    rolling_timeout: Duration = 120.0  # a rolling restart stops at an instance not ready by then
    liveness: Probe | None = None  # failing -> restart (reason liveness)
    readiness: Probe | None = None  # failing -> not ready; never restarts
    startup: Probe | None = None  # holds liveness off until it has passed once

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value or not value[0]:
            raise ValueError("expected a command: a non-empty list of strings or a string")
        return value

    @model_validator(mode="after")
    def _notify_settings(self) -> Program:
        if not self.notify and self.watchdog > 0:
            raise ValueError("watchdog needs notify = true: WATCHDOG=1 comes over sd_notify")
        if not self.notify and self.starts_on_notify:
            raise ValueError(
                'start_seconds = "notify" needs notify = true: READY=1 comes over sd_notify'
            )
        return self

    @property
    def starts_on_notify(self) -> bool:
        """RUNNING when the program says READY=1, rather than after start_seconds."""
        return self.start_seconds == "notify"

    @property
    def start_delay(self) -> float:
        """start_seconds as a number (0 with "notify": no time is enough by itself)."""
        return 0.0 if isinstance(self.start_seconds, str) else self.start_seconds


class ConfigFile(Frozen):
    """The top level of a sentinel TOML file."""

    include: list[str] = []
    sentinel: SentinelSection = SentinelSection()
    control: ControlSection = ControlSection()
    metrics: MetricsSection = MetricsSection()
    notify: NotifySection = NotifySection()
    programs: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Program] = {}


@dataclass(frozen=True)
class ProcessSpec:
    """One process to supervise: its program's settings, {instance} expanded, paths resolved."""

    name: str  # "web", or "web_0".."web_{n-1}" with instances > 1, or from the name template
    program: str
    group: str
    instance: int
    settings: Program
    stdout_log: Path | None  # None: discarded, or inherited
    stderr_log: Path | None  # None: discarded, inherited, or in stdout's when redirect_stderr
    stdout_inherit: str | None = None  # "stdout" / "stderr": to sentinel's own (path "inherit")
    stderr_inherit: str | None = None

    @property
    def priority(self) -> int:
        return self.settings.priority

    def as_run(self) -> ProcessSpec:
        """The spec without what only says how many run (instances, instances_start, the
        name template): two specs equal this way run the same process, so a reload that
        only scales a program leaves the processes it keeps alone."""
        scaling = {"instances": 1, "instances_start": 0, "name": None}
        return dataclasses.replace(self, settings=self.settings.model_copy(update=scaling))

    @functools.cached_property
    def probe_kinds(self) -> tuple[str, ...]:
        """The kinds of probe its program configures, in a fixed order."""
        s = self.settings
        probes = (("liveness", s.liveness), ("readiness", s.readiness), ("startup", s.startup))
        return tuple(kind for kind, probe in probes if probe is not None)


@dataclass(frozen=True)
class Config:
    """A validated configuration: where it came from, the daemon's settings and every process."""

    path: Path
    sentinel: SentinelSection
    control: ControlSection
    notify: NotifySection
    processes: tuple[ProcessSpec, ...]
    log_dir: Path
    state_dir: Path
    socket_path: Path
    metrics: MetricsSection = dataclasses.field(default_factory=MetricsSection)
    # Variables referenced as ${VAR} outside [programs.*]: sentinel's own, which children
    # do not inherit (environ.py).
    daemon_variables: frozenset[str] = frozenset()

    def process(self, name: str) -> ProcessSpec | None:
        return next((p for p in self.processes if p.name == name), None)


# {instance}, or {instance:02d} / {instance:3d} (padded, as supervisord's %(process_num)02d)
_INSTANCE = re.compile(r"\{instance(?::(0?)([1-9]\d?)d)?\}")


def expand_instance(value: Any, instance: int) -> Any:
    """Replace {instance} (or a padded {instance:02d}) in every string of a nested value."""
    if isinstance(value, str):
        if "{instance" not in value:
            return value
        return _INSTANCE.sub(
            lambda m: f"{instance:{m[1]}{m[2]}d}" if m[2] else str(instance), value
        )
    if isinstance(value, list):
        return [expand_instance(v, instance) for v in value]
    if isinstance(value, dict):
        return {k: expand_instance(v, instance) for k, v in value.items()}
    return value
