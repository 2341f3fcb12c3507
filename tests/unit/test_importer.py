"""sentinel import-supervisord: the corpus as TOML, pinned to Supervisor's own reading of it."""

from __future__ import annotations

import io
import os
import platform
import pwd
import re
import shlex
import signal
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from supervisor import datatypes
from supervisor.options import ServerOptions

from sentinel import cli
from sentinel.auth import hash_password, verify_password
from sentinel.config import load
from sentinel.errors import ConfigError
from sentinel.importer import main, translate, values
from sentinel.importer.tomlout import Table, dumps

FIXTURES = Path(__file__).parent.parent / "fixtures" / "supervisord"
CORPUS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
ENVIRON = {"HOME": "/home/ops", "PORT": "8000", "PATH": "/usr/bin:/bin"}
NODE = "web-1"
HERE = "<here>"


def fixed_hash(password: str) -> str:
    """A real scrypt hash with a fixed salt, so that the expected TOML stays the same."""
    return hash_password(password, salt=b"sixteen byte slt")


def render(case: str) -> tuple[str, list[str]]:
    """The translation of a corpus config, with its directory written as <here>."""
    result = translate(
        FIXTURES / case / "supervisord.conf", environ=ENVIRON, node=NODE, hasher=fixed_hash
    )
    directory = str(FIXTURES / case)
    return result.text.replace(directory, HERE), [
        str(n).replace(directory, HERE) for n in result.notes
    ]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(conf: Path, output: str | None = None, force: bool = False) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(str(conf), output, force, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def imported(tmp_path: Path, conf: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The TOML a supervisord config (given as text) translates into, parsed."""
    path = write(tmp_path / "supervisord.conf", conf)
    result = translate(path, environ=environ or ENVIRON, node=NODE, hasher=fixed_hash)
    return tomllib.loads(result.text)


# --- the corpus -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS)
def test_each_config_translates_to_its_expected_toml(case: str) -> None:
    """The TOML of each corpus config, comments and all, is the one reviewed in expected.toml."""
    text, _ = render(case)
    assert text == (FIXTURES / case / "expected.toml").read_text()


@pytest.mark.parametrize("case", CORPUS)
def test_each_translation_passes_check_config(case: str, tmp_path: Path) -> None:
    """What the importer writes, sentinel loads (what `sentinel check-config` does)."""
    result = translate(FIXTURES / case / "supervisord.conf", environ=ENVIRON, node=NODE)
    config = load(write(tmp_path / "sentinel.toml", result.text), environ=ENVIRON)
    assert config.processes


def _supervisord(case: str, monkeypatch: pytest.MonkeyPatch) -> ServerOptions:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    options = ServerOptions()  # reads the environment for %(ENV_X)s when made
    options.configfile = str(FIXTURES / case / "supervisord.conf")
    options.process_config(do_usage=False)
    return options


RESTARTS = {
    datatypes.RestartUnconditionally: "always",
    datatypes.RestartWhenExitUnexpected: "on-failure",
    False: "never",
}


def _log_kind(value: object) -> object:
    if value is datatypes.Automatic:
        return "auto"
    if value in ("/dev/stdout", "/dev/stderr"):
        return "inherit"
    return value


@pytest.mark.parametrize("case", CORPUS)
def test_each_process_is_the_one_supervisord_reads(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Supervisor's own parser and sentinel's loader, given the same config through the
    importer, see the same processes with the same settings."""
    options = _supervisord(case, monkeypatch)
    daemon = options.configroot.supervisord
    conf = FIXTURES / case / "supervisord.conf"
    result = translate(conf, environ=ENVIRON, node=platform.node())  # as supervisord reads it
    config = load(write(tmp_path / "sentinel.toml", result.text), environ=ENVIRON)
    log_dir = config.log_dir
    theirs = {
        (group.name, proc.name): (group, proc)
        for group in daemon.process_group_configs
        if type(group).__name__ == "ProcessGroupConfig"  # not listeners, not FastCGI
        for proc in group.process_configs
    }
    ours = {(spec.group, spec.name): spec for spec in config.processes}
    assert sorted(ours) == sorted(theirs)
    for key, spec in ours.items():
        group, proc = theirs[key]
        s = spec.settings
        daemonized = not daemon.nodaemon
        assert s.command == shlex.split(proc.command)
        assert s.directory == (proc.directory or (daemon.directory if daemonized else None))
        assert s.environment == proc.environment
        if proc.umask is not None:
            assert s.umask == proc.umask
        else:  # a daemonized supervisord's own umask, or (None) sentinel's, under systemd 022
            assert s.umask in ((None, daemon.umask) if daemonized else (None,))
        assert spec.priority == group.priority
        assert s.autostart == proc.autostart
        assert s.autorestart == RESTARTS[proc.autorestart]
        assert s.exit_codes == proc.exitcodes
        assert s.start_seconds == proc.startsecs
        assert s.start_retries == proc.startretries
        assert s.stop_signal == proc.stopsignal
        assert s.stop_timeout == proc.stopwaitsecs
        assert s.redirect_stderr == proc.redirect_stderr
        assert (pwd.getpwnam(s.user).pw_uid if s.user else None) == proc.uid
        for stream in ("stdout", "stderr"):
            theirs_path = _log_kind(getattr(proc, f"{stream}_logfile"))
            ours_path = getattr(spec, f"{stream}_log")
            if theirs_path == "auto":
                assert ours_path == log_dir / f"{spec.name}.{stream}.log"
            elif theirs_path == "inherit":
                assert getattr(s, stream).path == "inherit"
            else:
                assert (str(ours_path) if ours_path else None) == theirs_path
            if theirs_path not in (None, "inherit"):
                size = getattr(proc, f"{stream}_logfile_maxbytes")
                ours_size = getattr(s, stream).max_bytes
                # sentinel's default is 50 MB, supervisord's 50 MiB (4.9% more)
                assert ours_size == size or (size == 50 * 2**20 and ours_size == 50 * 10**6)
                assert getattr(s, stream).backups == getattr(proc, f"{stream}_logfile_backups")


# --- supervisord's value types, pinned to Supervisor's own functions --------------------------


def _outcome(parse: Callable[[str], Any], text: str) -> tuple[str, Any]:
    try:
        return "ok", parse(text)
    except ValueError:
        return "refused", None


@pytest.mark.parametrize(
    ("ours", "theirs", "texts"),
    [
        (
            values.boolean,
            datatypes.boolean,
            ["true", "Yes", "ON", "1", "false", "no", "Off", "0", "maybe", ""],
        ),
        (
            values.byte_size,
            datatypes.byte_size,
            ["50MB", "1kb", "2GB", "1024", "0", "10 MB", "1.5MB", "MB", "x"],
        ),
        (
            values.exit_codes,
            datatypes.list_of_exitcodes,
            ["0", "0,2", "0, 2", "", "256", "-1", "a"],
        ),
        (values.integer, datatypes.integer, ["10", " 3 ", "+4", "-1", "1_000", "1.5", "ten"]),
    ],
)
def test_values_read_as_supervisor_reads_them(
    ours: Callable[[str], Any], theirs: Callable[[str], Any], texts: list[str]
) -> None:
    """Booleans, sizes (1024-based), exit codes and numbers: accepted and refused alike."""
    for text in texts:
        assert _outcome(ours, text) == _outcome(theirs, text), text


@pytest.mark.parametrize(
    "text", ["TERM", "sigquit", " hup ", "KILL", "9", "1", "USR2", "NOPE", "999"]
)
def test_signals_read_as_supervisor_reads_them(text: str) -> None:
    """Signal names, with or without SIG, or numbers; written as sentinel's names."""
    kind, name = _outcome(values.signal_name, text)
    assert (kind, kind == "ok" and signal.Signals["SIG" + name]) == (
        _outcome(datatypes.signal_number, text)[0],
        kind == "ok" and datatypes.signal_number(text),
    )


@pytest.mark.parametrize(
    "text", ["true", "False", "unexpected", "UNEXPECTED", "1", "off", "sometimes"]
)
def test_autorestart_reads_as_supervisor_reads_it(text: str) -> None:
    """true: always, false: never, unexpected: on-failure; anything else refused."""
    kind, value = _outcome(values.autorestart, text)
    theirs_kind, theirs = _outcome(datatypes.auto_restart, text)
    assert kind == theirs_kind
    if kind == "ok":
        assert value == RESTARTS[theirs]


@pytest.mark.parametrize(
    "text",
    [
        'A="1",B="2"',
        "A=1, B=2",
        "QUOTED=\"a,b\",SINGLE='it is'",
        "PATH=/usr/bin:/bin,URL=http://x/y?z",
        'EMPTY="",X=1',
        'A="with ""double"" quotes"',
        "A=1,",
        "A=1 B=2",
        "A",
        "A=",
        "",
    ],
)
def test_environment_pairs_split_as_supervisor_splits_them(text: str) -> None:
    """KEY="val",KEY2=val2: shlex with supervisord's word characters, quotes stripped."""

    def ours(text: str) -> dict[str, str | None]:
        return {k: v.literal for k, v in values.key_value_pairs(values.Template.of(text)).items()}

    assert _outcome(ours, text) == _outcome(datatypes.dict_of_key_value_pairs, text)


# --- expansions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%(program_name)s_%(process_num)02d", "web_{instance:02d}"),
        ("%(process_num)d", "{instance}"),
        ("%(process_num)s", "{instance}"),
        ("%(process_num)3d", "{instance:3d}"),
        ("%(ENV_HOME)s/bin", "${HOME}/bin"),
        ("%(ENV_SET_HERE)s", "from the config"),
        ("100%% $5", "100% $$5"),
        ("%(here)s/x", "/etc/supervisor/x"),
        ("%(group_name)s", "backend"),
        ("%(numprocs)d", "4"),
        ("%(program_name)5s", "  web"),
    ],
)
def test_expansions_become_what_sentinel_expands(text: str, expected: str) -> None:
    """Known names become text; the environment and the process number wait for the start."""
    names: dict[str, values.Expansion] = {
        "program_name": "web",
        "group_name": "backend",
        "here": "/etc/supervisor",
        "numprocs": 4,
        "process_num": values.InstanceNumber(),
        "ENV_SET_HERE": values.Template.of("from the config"),
    }

    def lookup(name: str) -> values.Expansion | None:
        if name in names:
            return names[name]
        return values.Template((values.Env(name[4:]),)) if name.startswith("ENV_") else None

    assert values.expand(text, lookup).toml() == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("50%", "a lone %"),
        ("%(nope)s", "cannot expand %(nope)"),
        ("%(process_num)x", "{instance}"),
        ("%(process_num)-3d", "{instance}"),
    ],
)
def test_expansions_supervisord_or_sentinel_refuse_are_errors(text: str, error: str) -> None:
    """What supervisord would refuse, or sentinel cannot express, says so."""
    names = {"process_num": values.InstanceNumber()}
    with pytest.raises(ValueError, match=re.escape(error)):
        values.expand(text, names.get)


# --- what cannot be read: exit 1, one line naming the file and the line -----------------------


@pytest.mark.parametrize(
    ("conf", "where", "message"),
    [
        ("key=value\n[program:x]\ncommand=/bin/true\n", ":1:", "a key before the first [section]"),
        ("[program:x]\ncommand=/bin/true\nthis line has no equals sign\n", ":3:", "cannot parse"),
        (
            "[supervisord]\n\n[program:x]\ncommand=/bin/true\nautostart=maybe\n",
            ":5: [program:x] autostart",
            "expected true or false",
        ),
        (
            "[program:x]\ncommand=/bin/sleep %(ENV_HOME)s %(nope)s\n",
            ":2: [program:x] command",
            "cannot expand %(nope)",
        ),
        (
            "[program:x]\ncommand=/bin/true\nnumprocs=2\n",
            ":1: [program:x] process_name",
            "must hold %(process_num)",
        ),
        ("[program:x]\nautostart=true\n", ":1: [program:x]", "no command"),
        (
            "[program:x]\ncommand=/bin/true\nstopsignal=NOPE\n",
            ":3: [program:x] stopsignal",
            "expected a signal name",
        ),
        (
            "[program:x]\ncommand=/bin/true\nstartsecs=%(ENV_UNSET_HERE)s\n",
            ":3: [program:x] startsecs",
            "UNSET_HERE is not set",
        ),
        (
            "[inet_http_server]\nport=9001\nusername=ops\n",
            ":1: [inet_http_server]",
            "both username and password",
        ),
        ("[include]\nfile=conf.d/*\n", ":1: [include]", "supervisord needs a files = ... line"),
        ("[group:g]\nprograms=ghost\n", ":2: [group:g] programs", "no [program:ghost]"),
        ("[program:a b]\ncommand=/bin/true\n", ":1: [program:a b]", "refuses ' '"),
    ],
)
def test_what_supervisord_would_refuse_is_one_line_naming_file_and_line(
    tmp_path: Path, conf: str, where: str, message: str
) -> None:
    """Exit 1; stderr is one line: the file, the line, the section and key, and why."""
    path = write(tmp_path / "supervisord.conf", conf)
    code, out, err = run(path)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"sentinel import-supervisord: {path}{where}")
    assert message in err


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    """A missing file, or one that is not text, is named, with exit 1."""
    code, _, err = run(tmp_path / "nope.conf")
    assert (
        code == 1
        and err
        == f"sentinel import-supervisord: {tmp_path / 'nope.conf'}: cannot read: No such file or directory\n"
    )
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"[program:x]\ncommand=\xff\n")
    code, _, err = run(binary)
    assert code == 1 and err == f"sentinel import-supervisord: {binary}:2: not UTF-8 text\n"


def test_an_unreadable_include_is_named(tmp_path: Path) -> None:
    """An [include] file that cannot be read is an error naming it."""
    write(tmp_path / "conf.d" / "web.conf", "[program:web]\ncommand=/bin/true\n")
    (tmp_path / "conf.d" / "web.conf").chmod(0)
    path = write(tmp_path / "supervisord.conf", "[include]\nfiles=conf.d/*.conf\n")
    if os.access(tmp_path / "conf.d" / "web.conf", os.R_OK):  # root reads it anyway
        (tmp_path / "conf.d" / "web.conf").write_bytes(b"\xff")
    code, _, err = run(path)
    assert code == 1 and str(tmp_path / "conf.d" / "web.conf") in err


def test_what_sentinel_cannot_take_is_an_error(tmp_path: Path) -> None:
    """A config supervisord takes but sentinel would refuse fails now, naming the key."""
    path = write(
        tmp_path / "supervisord.conf",
        "[program:x]\ncommand=/bin/true\nnumprocs=0\nprocess_name=%(process_num)d\n",
    )
    code, _, err = run(path)
    assert code == 1 and "sentinel would refuse programs.x.instances" in err


# --- output: stdout, -o OUT, --force ----------------------------------------------------------


def test_the_toml_goes_to_stdout_and_warnings_to_stderr(tmp_path: Path) -> None:
    """stdout holds the TOML alone; each warning is a line on stderr; exit 0."""
    code, out, err = run(FIXTURES / "listeners" / "supervisord.conf")
    assert code == 0
    assert tomllib.loads(out)["programs"]["web"]["liveness"]["period"] == "5s"
    assert all(line.startswith("warning: ") for line in err.splitlines())
    assert "[eventlistener:crashmail]" in err and "[fcgi-program:php]" in err


def test_a_fully_translated_config_warns_nothing(tmp_path: Path) -> None:
    """Exit 0 and nothing on stderr when everything had an equivalent."""
    conf = "[supervisord]\nnodaemon=true\n[program:x]\ncommand=/bin/true\nstartsecs=0\n"
    code, out, err = run(write(tmp_path / "supervisord.conf", conf))
    assert (code, err) == (0, "")
    assert tomllib.loads(out)["programs"]["x"] == {"command": "/bin/true", "start_seconds": "0s"}


def test_output_is_written_and_never_overwritten_without_force(tmp_path: Path) -> None:
    """-o OUT writes the file; an existing OUT is kept (exit 2) unless --force."""
    conf = FIXTURES / "single" / "supervisord.conf"
    out = tmp_path / "sentinel.toml"
    assert run(conf, str(out))[0] == 0
    assert tomllib.loads(out.read_text())["programs"]["foo"]["command"] == "/bin/sleep 1000"
    out.write_text("# mine\n")
    code, _, err = run(conf, str(out))
    assert code == 2 and "exists: give --force" in err and out.read_text() == "# mine\n"
    assert run(conf, str(out), force=True)[0] == 0
    assert "programs" in tomllib.loads(out.read_text())


def test_an_output_with_password_hashes_is_private(tmp_path: Path) -> None:
    """Password hashes are written to a file only its owner can read."""
    out = tmp_path / "sentinel.toml"
    assert run(FIXTURES / "http" / "supervisord.conf", str(out))[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_the_command_line_runs_the_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sentinel import-supervisord FILE -o OUT` is wired to the importer."""
    out = tmp_path / "sentinel.toml"
    assert (
        cli.main(
            ["import-supervisord", str(FIXTURES / "groups" / "supervisord.conf"), "-o", str(out)]
        )
        == 0
    )
    assert tomllib.loads(out.read_text())["programs"]["app"]["group"] == "web"
    assert (
        cli.main(
            ["import-supervisord", str(FIXTURES / "groups" / "supervisord.conf"), "-o", str(out)]
        )
        == 2
    )
    assert cli.main(["import-supervisord", str(tmp_path / "missing.conf")]) == 1
    assert "missing.conf: cannot read" in capsys.readouterr().err


# --- control: sockets, addresses, users -------------------------------------------------------


def test_passwords_are_hashed_and_never_written_in_clear(tmp_path: Path) -> None:
    """A clear-text password becomes a scrypt hash that checks; a {SHA} one is kept, with a
    warning that it is unsalted; supervisord's user may do everything: admin."""
    result = translate(FIXTURES / "http" / "supervisord.conf", environ=ENVIRON, node=NODE)
    assert "correct horse" not in result.text
    users = {u["name"]: u for u in tomllib.loads(result.text)["control"]["users"]}
    assert verify_password("correct horse battery staple", users["ops"]["password_hash"])
    assert users["ops"]["password_hash"].startswith("$scrypt$")
    assert users["admin"]["password_hash"] == "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d"
    assert verify_password("thepassword", users["admin"]["password_hash"])
    assert {u["role"] for u in users.values()} == {"admin"}
    assert any("unsalted" in str(note) for note in result.notes)


def test_a_password_from_the_environment_is_read_at_the_import(tmp_path: Path) -> None:
    """password=%(ENV_X)s is hashed from the value X has now, and the import says so."""
    conf = "[inet_http_server]\nport=127.0.0.1:9001\nusername=ops\npassword=%(ENV_SUPERVISOR_PASSWORD)s\n"
    path = write(tmp_path / "supervisord.conf", conf)
    result = translate(path, environ={"SUPERVISOR_PASSWORD": "s3cret"}, node=NODE)
    user = tomllib.loads(result.text)["control"]["users"][0]
    assert verify_password("s3cret", user["password_hash"]) and "s3cret" not in result.text
    assert any("SUPERVISOR_PASSWORD read now" in str(n) for n in result.notes)


@pytest.mark.parametrize(
    ("port", "users", "http", "warning"),
    [
        ("127.0.0.1:9001", "", "127.0.0.1:9001", "let anyone on this host control"),
        ("localhost:9001", "username=a\npassword=b\n", "localhost:9001", None),
        ("9001", "", "127.0.0.1:9001", "it listens on 127.0.0.1 until you add [control] users"),
        ("*:9001", "", "127.0.0.1:9001", "supervisord served 0.0.0.0 with no password"),
        ("*:9001", "username=a\npassword=b\n", "0.0.0.0:9001", "tls_cert"),
        ("10.0.0.5:9001", "username=a\npassword=b\n", "10.0.0.5:9001", "tls_cert"),
    ],
)
def test_an_http_server_on_the_network_needs_users(
    tmp_path: Path, port: str, users: str, http: str, warning: str | None
) -> None:
    """A wildcard or non-loopback address keeps its users; without them, sentinel (which
    refuses an open network listener) listens on loopback, and says so."""
    path = write(tmp_path / "supervisord.conf", f"[inet_http_server]\nport={port}\n{users}")
    result = translate(path, environ=ENVIRON, node=NODE, hasher=fixed_hash)
    assert tomllib.loads(result.text)["control"]["http"] == http
    notes = " ".join(str(n) for n in result.notes)
    assert (warning in notes) if warning else ("inet_http_server" not in notes)


def test_a_socket_in_a_shared_directory_is_not_kept(tmp_path: Path) -> None:
    """/tmp/supervisor.sock (Supervisor's sample) would be refused: the default socket is
    kept, with a warning; a socket in a private directory is kept, with its mode and group."""
    control = imported(tmp_path, "[unix_http_server]\nfile=/tmp/supervisor.sock\n").get(
        "control", {}
    )
    assert "socket" not in control
    private = tmp_path / "run"
    private.mkdir(mode=0o755)
    conf = f"[unix_http_server]\nfile={private}/s.sock\nchmod=0660\nchown=nobody:nogroup\n"
    control = imported(tmp_path, conf)["control"]
    assert control == {
        "socket": f"{private}/s.sock",
        "socket_mode": "0660",
        "socket_group": "nogroup",
    }


# --- programs ---------------------------------------------------------------------------------


def test_the_same_process_name_in_two_groups_gets_its_group_in_front(tmp_path: Path) -> None:
    """supervisord tells a:worker from b:worker; sentinel names must differ, so the second
    is b_worker, with a warning."""
    conf = "\n".join(
        [
            "[group:a]\nprograms=one\n[group:b]\nprograms=two",
            "[program:one]\ncommand=/bin/true\nprocess_name=worker",
            "[program:two]\ncommand=/bin/true\nprocess_name=worker\n",
        ]
    )
    path = write(tmp_path / "supervisord.conf", conf)
    result = translate(path, environ=ENVIRON, node=NODE)
    programs = tomllib.loads(result.text)["programs"]
    assert (programs["one"]["name"], programs["two"]["name"]) == ("worker", "b_worker")
    names = [
        p.name for p in load(write(tmp_path / "s.toml", result.text), environ=ENVIRON).processes
    ]
    assert names == ["worker", "b_worker"]


def test_a_name_sentinel_cannot_take_is_changed_with_a_warning(tmp_path: Path) -> None:
    """supervisord allows web@1; sentinel names are letters, digits, _ . -."""
    path = write(tmp_path / "supervisord.conf", "[program:web@1]\ncommand=/bin/true\n")
    result = translate(path, environ=ENVIRON, node=NODE)
    assert list(tomllib.loads(result.text)["programs"]) == ["web_1"]
    assert any("'web@1' is named 'web_1'" in str(n) for n in result.notes)


def test_unknown_keys_are_ignored_as_supervisord_ignores_them(tmp_path: Path) -> None:
    """A key supervisord does not know is not an error there; here it is a warning."""
    conf = "[supervisord]\n[program:x]\ncommand=/bin/true\nautostrat=false\n"
    path = write(tmp_path / "supervisord.conf", conf)
    result = translate(path, environ=ENVIRON, node=NODE)
    assert "autostart" not in result.text
    assert [str(n).split(": ", 1)[1] for n in result.notes] == [
        "[program:x] autostrat: not a supervisord key: ignored, as supervisord ignores it"
    ]


def test_an_httpok_for_any_program_probes_each_and_one_probe_per_program(tmp_path: Path) -> None:
    """httpok -a watches every program; a second probe for a program is left out, said."""
    conf = "\n".join(
        [
            "[program:a]\ncommand=/bin/true\n[program:b]\ncommand=/bin/true",
            "[eventlistener:ok]\ncommand=httpok -a http://127.0.0.1/\nevents=TICK_60,TICK_5",
            "[eventlistener:mem]\ncommand=memmon -a 1GB\nevents=TICK_60",
            "[eventlistener:idle]\ncommand=httpok -a http://127.0.0.1/\nevents=PROCESS_STATE",
            "[eventlistener:quote]\ncommand=httpok -a 'http://127.0.0.1/\nevents=TICK_5\n",
        ]
    )
    path = write(tmp_path / "supervisord.conf", conf)
    result = translate(path, environ=ENVIRON, node=NODE)
    programs = tomllib.loads(result.text)["programs"]
    for name in ("a", "b"):
        assert programs[name]["liveness"]["http"] == {"url": "http://127.0.0.1/"}
        assert programs[name]["liveness"]["period"] == "5s"  # the shorter tick
    notes = " ".join(str(n) for n in result.notes)
    assert "has a liveness probe already" in notes and "has none: not translated" in notes
    assert "[eventlistener:quote] command: cannot be split" in notes


def test_plugins_and_unknown_sections_are_listed(tmp_path: Path) -> None:
    """Supervisor's own rpcinterface needs nothing; other plugins, and sections supervisord
    does not know, are warnings naming them."""
    conf = "\n".join(
        [
            "[supervisord]",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[rpcinterface:twiddler]",
            "supervisor.rpcinterface_factory = supervisor_twiddler.rpcinterface:make_twiddler",
            "[ctlplugin:serialrestart]",
            "supervisor.ctl_factory = supervisorserialrestart.controllerplugin:make",
            "[programme:typo]",
            "command=/bin/true\n",
        ]
    )
    result = translate(write(tmp_path / "supervisord.conf", conf), environ=ENVIRON, node=NODE)
    subjects = [n.subject for n in result.notes]
    assert subjects == ["[rpcinterface:twiddler]", "[ctlplugin:serialrestart]", "[programme:typo]"]


# --- the TOML writer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'quote " and backslash \\',
        "tab\there",
        "new\nline",
        "bell\x07 and del\x7f",
        "ünïcödé ✓",
        "$${X}",
        "",
    ],
)
def test_strings_read_back_as_written(text: str) -> None:
    """Every string the writer writes, tomllib reads back the same."""
    table = Table(["a comment\nover two lines, with a \x1b escape"])
    table.set("key with spaces", text)
    table.table("sub").set("list", [text, 1, True])
    assert tomllib.loads(dumps(table)) == {
        "key with spaces": text,
        "sub": {"list": [text, 1, True]},
    }


def test_plain_data_is_written_as_tables() -> None:
    """Table.of: nested dicts become tables, and read back equal."""
    data = {
        "control": {"socket": "/run/s.sock"},
        "programs": {"a.b": {"command": "x", "stdout": {"path": "none"}}},
    }
    assert tomllib.loads(dumps(Table.of(data))) == data


def test_config_error_type() -> None:
    """A problem is a ConfigError, as everywhere in sentinel."""
    with pytest.raises(ConfigError):
        translate(Path("/nonexistent/supervisord.conf"))
