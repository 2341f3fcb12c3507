"""depends_on: config errors, resolution to processes, and the start and stop orders."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import load
from sentinel.dependencies import resolve, start_order, stop_waves
from sentinel.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("programs", "key", "message"),
    [
        ('[programs.a]\ncommand = "x"\ndepends_on = ["nope"]\n', "programs.a.depends_on",
         "no program named 'nope'"),
        ('[programs.a]\ncommand = "x"\ndepends_on = ["nope:*"]\n', "programs.a.depends_on",
         "no group named 'nope:*'"),
        ('[programs.a]\ncommand = "x"\ndepends_on = ["a"]\n', "programs.a.depends_on",
         "a cannot depend on itself"),
        ('[programs.a]\ncommand = "x"\ngroup = "g"\ndepends_on = ["g:*"]\n'
         '[programs.b]\ncommand = "x"\ngroup = "g"\n', "programs.a.depends_on",
         "a cannot depend on itself (g:* includes it)"),
        ('[programs.a]\ncommand = "x"\ndepends_on = ["b"]\n'
         '[programs.b]\ncommand = "x"\ndepends_on = ["c"]\n'
         '[programs.c]\ncommand = "x"\ndepends_on = ["a"]\n', "programs.a.depends_on",
         "a dependency cycle: a -> b -> c -> a"),
        ('[programs.b]\ncommand = "x"\ndepends_on = ["g:*"]\n'
         '[programs.a]\ncommand = "x"\ngroup = "g"\ndepends_on = ["b"]\n', "programs.a.depends_on",
         "a dependency cycle: a -> b -> a"),
        ('[programs.a]\ncommand = "x"\ndepends_on = ["b c"]\n', "programs.a.depends_on[0]",
         "expected string should match pattern"),
        ('[programs.a]\ncommand = "x"\nwatchdog = "1s"\n', "programs.a",
         "watchdog needs notify = true"),
        ('[programs.a]\ncommand = "x"\nstart_seconds = "notify"\n', "programs.a",
         'start_seconds = "notify" needs notify = true'),
        ('[programs.a]\ncommand = "x"\nreload = "sometimes"\n', "programs.a.reload",
         "expected 'restart' or 'rolling'"),
    ],
)  # fmt: skip
def test_bad_dependencies_name_the_key(
    tmp_path: Path, programs: str, key: str, message: str
) -> None:
    """Unknown names, a program depending on itself, cycles and notify settings without
    notify are config errors naming the key."""
    with pytest.raises(ConfigError) as raised:
        load(write(tmp_path, programs))
    found = [(p.key, p.message) for p in raised.value.problems]
    assert any(k == key and message in m for k, m in found), found


def test_dependencies_resolve_to_processes(tmp_path: Path) -> None:
    """A program name is each of its instances; GROUP:* every process of the group."""
    config = load(
        write(
            tmp_path,
            '[programs.db]\ncommand = "x"\ninstances = 2\n'
            '[programs.cache]\ncommand = "x"\ngroup = "store"\n'
            '[programs.queue]\ncommand = "x"\ngroup = "store"\n'
            '[programs.api]\ncommand = "x"\ndepends_on = ["db", "store:*"]\n',
        )
    )
    assert resolve(config.processes) == {"api": ("db_0", "db_1", "cache", "queue")}


def test_start_order_puts_dependencies_first_then_priority() -> None:
    """What a process depends on starts before it, whatever the priorities; the rest by
    priority."""
    requires = {"web": ("api",), "api": ("db",)}
    priority = {"web": 1, "api": 2, "db": 3, "cron": 0}
    assert start_order(["web", "api", "db", "cron"], requires, priority) == [
        "cron",
        "db",
        "api",
        "web",
    ]


def test_stop_waves_put_dependents_first_then_priority() -> None:
    """A process stops once what depends on it has; among the free ones, the highest priority
    number first, a tier at a time."""
    requires = {"web": ("api",), "api": ("db",)}
    priority = {"web": 1, "api": 2, "db": 3, "cron": 5, "mail": 5}
    assert stop_waves(["db", "api", "web", "cron", "mail"], requires, priority) == [
        ["cron", "mail"],
        ["web"],
        ["api"],
        ["db"],
    ]
    # Only what is being stopped counts: db alone stops at once.
    assert stop_waves(["db"], requires, priority) == [["db"]]
