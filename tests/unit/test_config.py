"""Config loading: includes, ${VAR} expansion, durations, sizes, instances and error messages."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from sentinel.auth import hash_password
from sentinel.config import control_socket, load
from sentinel.errors import ConfigError
from sentinel.model import parse_duration, parse_size


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10), ("5m", 300), ("1h", 3600), (3, 3.0), (0.5, 0.5), ("0s", 0)],
)
def test_durations(text: object, seconds: float) -> None:
    """Durations take ms/s/m/h suffixes or a number of seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("50MB", 50 * 10**6), ("1GiB", 2**30), (1024, 1024), ("10 KiB", 10240)]
)
def test_sizes(text: object, size: int) -> None:
    """Sizes take decimal and binary units or a number of bytes."""
    assert parse_size(text) == size


def test_a_size_is_exact_however_long() -> None:
    """A size is computed exactly, not in floats: no rounding, no infinity."""
    assert parse_size("1.1GB") == 1_100_000_000
    assert parse_size("9" * 400 + "B") == int("9" * 400)


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ('start_seconds = "ten"', "programs.web.start_seconds", 'expected a duration like "250ms"'),
        ('stop_signal = "NOPE"', "programs.web.stop_signal", "expected a signal name"),
        (
            'autorestart = "sometimes"',
            "programs.web.autorestart",
            "expected 'always', 'on-failure' or 'never'",
        ),
        ("colour = 1", "programs.web.colour", "unknown key"),
        ('stdout = { max_bytes = "lots" }', "programs.web.stdout.max_bytes", "expected a size"),
        ("exit_codes = [300]", "programs.web.exit_codes[0]", "less than or equal to 255"),
        ('user = "no-such-user-here"', "programs.web.user", "expected an existing user"),
        # NaN and infinities are TOML floats, and NaN passes every "less than" check.
        ("start_seconds = nan", "programs.web.start_seconds", "expected a duration between"),
        ("stop_timeout = inf", "programs.web.stop_timeout", "expected a duration between"),
        (
            "liveness = { tcp = { port = 1 }, period = nan }",
            "programs.web.liveness.period",
            "between",
        ),
        ('backoff = { max = "99999999d" }', "programs.web.backoff.max", "between 0 and 10 years"),
        ("backoff = { multiplier = inf }", "programs.web.backoff.multiplier", "finite number"),
        ("backoff = { jitter = nan }", "programs.web.backoff.jitter", "finite number"),
        ("flapping = { window = -inf }", "programs.web.flapping.window", "between"),
        ("stdout = { max_bytes = 1.5e300 }", "programs.web.stdout.max_bytes", "expected a size"),
    ],
)
def test_bad_value_names_file_key_and_expectation(
    tmp_path: Path, body: str, key: str, expected: str
) -> None:
    """A bad value is reported as FILE: KEY.PATH: what was expected."""
    path = write(tmp_path / "s.toml", f'[programs.web]\ncommand = "x"\n{body}\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert f"{path}: {key}: " in str(info.value)
    assert expected in str(info.value)


def test_missing_command_and_invalid_toml(tmp_path: Path) -> None:
    """A program without a command, and broken TOML, are clear errors."""
    with pytest.raises(ConfigError, match=r"programs\.web\.command: required key is missing"):
        load(write(tmp_path / "a.toml", "[programs.web]\nautostart = true\n"))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(write(tmp_path / "b.toml", "[programs.web\n"))


def test_environment_expansion(tmp_path: Path) -> None:
    """${VAR} and ${VAR:-default} expand from the environment; $$ is a literal $."""
    path = write(
        tmp_path / "s.toml", '[programs.web]\ncommand = "serve ${PORT} ${HOST:-0.0.0.0} $$HOME"\n'
    )
    config = load(path, environ={"PORT": "8000"})
    assert config.processes[0].settings.command == ["serve", "8000", "0.0.0.0", "$HOME"]
    with pytest.raises(
        ConfigError, match=r"programs\.web\.command: environment variable PORT is not set"
    ):
        load(path, environ={})


def test_includes_merge_programs_and_name_their_file(tmp_path: Path) -> None:
    """include globs add programs; an error in an included file names that file."""
    main = write(tmp_path / "s.toml", 'include = ["conf.d/*.toml"]\n[programs.a]\ncommand = "a"\n')
    write(tmp_path / "conf.d" / "b.toml", '[programs.b]\ncommand = "b"\n')
    assert [p.name for p in load(main).processes] == ["a", "b"]
    bad = write(tmp_path / "conf.d" / "c.toml", '[programs.c]\ncommand = "c"\npriority = "high"\n')
    with pytest.raises(ConfigError) as info:
        load(main)
    assert f"{bad}: programs.c.priority" in str(info.value)


def test_duplicate_program_across_files(tmp_path: Path) -> None:
    """The same program in two files is an error naming both."""
    main = write(tmp_path / "s.toml", 'include = ["d/*.toml"]\n[programs.a]\ncommand = "a"\n')
    write(tmp_path / "d" / "x.toml", '[programs.a]\ncommand = "b"\n')
    with pytest.raises(ConfigError, match="already defined in"):
        load(main)


def test_instances_expand_names_and_strings(tmp_path: Path) -> None:
    """instances = n makes name_0..name_{n-1} with {instance} expanded, in one group."""
    path = write(
        tmp_path / "s.toml",
        '[programs.w]\ncommand = "serve --port 80{instance}"\ninstances = 2\n'
        'environment = { ID = "{instance}" }\n',
    )
    processes = load(path).processes
    assert [
        (p.name, p.group, p.settings.command[-1], p.settings.environment["ID"]) for p in processes
    ] == [
        ("w_0", "w", "800", "0"),
        ("w_1", "w", "801", "1"),
    ]


def test_defaults_and_resolved_paths(tmp_path: Path) -> None:
    """Defaults match DESIGN.md; log paths resolve in log_dir relative to the config file."""
    path = write(tmp_path / "s.toml", '[programs.web]\ncommand = ["x"]\nredirect_stderr = true\n')
    config = load(path)
    spec = config.processes[0]
    s = spec.settings
    assert (s.start_seconds, s.start_retries, s.stop_signal, s.stop_timeout) == (
        1.0,
        3,
        signal.SIGTERM,
        10.0,
    )
    assert (s.autorestart, s.exit_codes, s.backoff.initial, s.backoff.max) == (
        "on-failure",
        [0],
        1.0,
        60.0,
    )
    assert spec.stdout_log == tmp_path / "logs" / "web.stdout.log"
    assert spec.stderr_log is None
    assert config.socket_path == tmp_path / "sentinel.sock"


HASH = hash_password("pw", salt=b"0123456789abcdef")


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ('http = "0.0.0.0:9001"', "control: '0.0.0.0:9001' is not a loopback address"),
        ('http = "[::]:9001"', "Add users = [{"),
        (
            f'http = "0.0.0.0:9001"\nanonymous_role = "operator"\n'
            f'users = [{{ name = "a", password_hash = "{HASH}" }}]',
            "anyone on the network",
        ),
        ('tls_cert = "c.pem"', "control: tls_cert and tls_key go together"),
        (
            'users = [{ name = "a", password_hash = "hunter2" }]',
            "users[0].password_hash: expected a hash",
        ),
        (
            f'users = [{{ name = "a", password_hash = "{HASH}" }}, '
            f'{{ name = "a", password_hash = "{HASH}" }}]',
            "control.users: expected each user once",
        ),
        (f'users = [{{ name = "a", password_hash = "{HASH}", role = "root" }}]', "users[0].role"),
        ('http = "nowhere"', 'control.http: expected "HOST:PORT"'),
    ],
)
def test_control_section_errors(tmp_path: Path, control: str, message: str) -> None:
    """The network needs users; roles, hashes and TLS settings are checked."""
    path = write(tmp_path / "s.toml", f"[control]\n{control}\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert message in str(info.value)


def test_network_with_users_is_accepted_and_anonymous_is_nobody(tmp_path: Path) -> None:
    """With users, a non-loopback address is fine, and callers without a password get nothing
    unless anonymous_role says otherwise; without users, loopback callers are viewers."""
    path = write(
        tmp_path / "s.toml",
        f'[control]\nhttp = "0.0.0.0:9001"\nusers = [{{ name = "ops", password_hash = "{HASH}" }}]\n',
    )
    control = load(path).control
    assert (control.anonymous, control.users[0].role) == ("none", "viewer")
    assert load(write(tmp_path / "t.toml", "")).control.anonymous == "viewer"


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ('period = "1s"', "programs.a.liveness: expected exactly one check: http, tcp or exec"),
        ('exec = { check = "nope" }', "programs.a.liveness.exec.check: expected a bundled check ("),
        (
            'http = { url = "ftp://x" }',
            "programs.a.liveness.http.url: expected string should match",
        ),
        (
            'tcp = { port = 80 }\nperiod = "0s"',
            "programs.a.liveness: period and timeout must be more",
        ),
        (
            'http = { url = "http://h/", expect_status = "2xx" }',
            'expected HTTP statuses like "200-399"',
        ),
        (
            'http = { url = "http://h/", headers = { "X-A" = "1\\r\\nX-B: 2" } }',
            "programs.a.liveness.http.headers: header 'X-A': expected a value without line",
        ),
        (
            'http = { url = "http://h/", headers = { "X A" = "1" } }',
            "programs.a.liveness.http.headers: expected a header name",
        ),
    ],
)
def test_probe_errors_name_the_key(tmp_path: Path, probe: str, message: str) -> None:
    """A probe without a check, or with a bad setting, is an error naming its key."""
    path = write(
        tmp_path / "s.toml", f'[programs.a]\ncommand = "x"\n[programs.a.liveness]\n{probe}\n'
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        ("instances = 3", ["w_0", "w_1", "w_2"]),
        ("instances = 1", ["w"]),
        ('instances = 2\ninstances_start = 1\nname = "{program}-{instance:02d}"', ["w-01", "w-02"]),
        ('instances = 1\nname = "{program}_{instance}"', ["w_0"]),
        ('instances = 2\nname = "worker{instance:3d}"', ["worker  0", "worker  1"]),
    ],
)
def test_instance_names(tmp_path: Path, keys: str, names: list[str]) -> None:
    """Names come from the template (with {program} and {instance}, padded as supervisord's
    %(process_num)02d), else the program's name, with _{instance} when there are more."""
    path = write(tmp_path / "s.toml", f'[programs.w]\ncommand = "x {{instance:02d}}"\n{keys}\n')
    if " " in names[0]:
        with pytest.raises(ConfigError, match=r"programs\.w\.name: the template gives 'worker  0'"):
            load(path)
        return
    processes = load(path).processes
    assert [p.name for p in processes] == names
    first = int(names[0].split("-")[-1]) if "-" in names[0] else 0
    assert processes[0].settings.command == ["x", f"{first:02d}"]


def test_a_template_without_instance_clashes(tmp_path: Path) -> None:
    """Two processes cannot share a name."""
    path = write(tmp_path / "s.toml", '[programs.w]\ncommand = "x"\ninstances = 2\nname = "w"\n')
    with pytest.raises(ConfigError, match="process name 'w' clashes"):
        load(path)


def test_probe_settings_expand_instance(tmp_path: Path) -> None:
    """{instance} expands in probe settings, and status ranges parse."""
    path = write(
        tmp_path / "s.toml",
        '[programs.w]\ncommand = "x"\ninstances = 2\n[programs.w.liveness]\n'
        'http = { url = "http://127.0.0.1:800{instance}/", expect_status = "200,204,300-399" }\n',
    )
    probes = [p.settings.liveness for p in load(path).processes]
    assert [p.http.url for p in probes if p and p.http] == [
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8001/",
    ]
    assert (
        probes[0]
        and probes[0].http
        and probes[0].http.expect_status == ((200, 200), (204, 204), (300, 399))
    )


def test_a_tcp_port_may_hold_instance(tmp_path: Path) -> None:
    """A number that is a template ("800{instance}") validates per instance, as it will run."""
    path = write(
        tmp_path / "s.toml",
        '[programs.w]\ncommand = "x"\ninstances = 2\n'
        '[programs.w.liveness]\ntcp = { port = "800{instance}" }\n',
    )
    probes = [p.settings.liveness for p in load(path).processes]
    assert [p.tcp.port for p in probes if p and p.tcp] == [8000, 8001]
    path.write_text(
        path.read_text()
        .replace('"800{instance}"', '"6553{instance}"')
        .replace("instances = 2", "instances = 7")
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert f"{path}: programs.w.liveness.tcp.port: expected" in str(info.value)
    assert "(instance 6)" in str(info.value)


def test_a_client_reads_the_control_socket_alone(tmp_path: Path) -> None:
    """The socket comes from [control] of the main file; broken includes and unset ${VAR}s
    elsewhere do not matter to a client, while load() still refuses them."""
    main = write(
        tmp_path / "s.toml",
        'include = ["conf.d/*.toml"]\n'
        '[sentinel]\nlog_dir = "${LOGS}"\n'
        '[control]\nsocket = "${RUN:-run}/sentinel.sock"\n'
        '[programs.web]\ncommand = "${WEB_BINARY}"\nstop_timeout = "soon"\n',
    )
    write(tmp_path / "conf.d" / "typo.toml", "[programs.worker\n")
    assert control_socket(main, environ={}) == tmp_path / "run" / "sentinel.sock"
    assert control_socket(main, environ={"RUN": "/var/run"}) == Path("/var/run/sentinel.sock")
    with pytest.raises(ConfigError):
        load(main, environ={})
    main.write_text("[programs.web]\ncommand = 'x'\n")
    assert control_socket(main, environ={}) == tmp_path / "sentinel.sock"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[control\n", "invalid TOML"),
        ("control = 3\n", "control: expected a table"),
        ("[control]\nsocket = 3\n", "control.socket: expected a path, got 3"),
        ('[control]\nsocket = "${NOPE}"\n', "control.socket: environment variable NOPE"),
    ],
)
def test_a_client_is_told_what_is_wrong_with_the_control_table(
    tmp_path: Path, text: str, expected: str
) -> None:
    """What a client cannot use in [control] is an error naming the file and the key."""
    path = write(tmp_path / "s.toml", text)
    with pytest.raises(ConfigError) as info:
        control_socket(path, environ={})
    assert f"{path}: {expected}" in str(info.value)
