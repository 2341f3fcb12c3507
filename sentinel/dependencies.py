"""depends_on: which processes each process waits for, checked when the config is read (pure).

A program's `depends_on` names programs (`"db"`: every process of it) and groups
(`"cache:*"`: every process of every program in the group). Each of them must be RUNNING and
ready before a process of the program starts; stops go the other way, dependents first.

A name that is neither a program nor a group, a program that depends on itself (by name, or
through its own group) and a cycle are config errors, each naming `programs.NAME.depends_on`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from sentinel.errors import ConfigProblem
from sentinel.model import ProcessSpec, Program


def _group_of(name: str, program: Program) -> str:
    return program.group or name


def _targets(entry: str, programs: Mapping[str, Program]) -> list[str] | None:
    """The programs a depends_on entry names; None when it names nothing."""
    if entry.endswith(":*"):
        group = entry[:-2]
        found = [n for n, p in programs.items() if _group_of(n, p) == group]
        return found or None
    return [entry] if entry in programs else None


def check(
    programs: Mapping[str, Program], origin: Mapping[str, Path], main: Path
) -> list[ConfigProblem]:
    """The problems of every program's depends_on: unknown names, itself, cycles."""
    problems: list[ConfigProblem] = []
    graph: dict[str, list[str]] = {}
    for name, program in programs.items():
        file = str(origin.get(name, main))
        key = f"programs.{name}.depends_on"
        edges: list[str] = []
        for entry in program.depends_on:
            targets = _targets(entry, programs)
            if targets is None:
                what = "group" if entry.endswith(":*") else "program"
                problems.append(ConfigProblem(file, key, f"no {what} named {entry!r}"))
            elif name in targets:
                why = "" if entry == name else f" ({entry} includes it)"
                problems.append(ConfigProblem(file, key, f"{name} cannot depend on itself{why}"))
            else:
                edges += [t for t in targets if t not in edges]
        graph[name] = edges
    for cycle in _cycles(graph):
        first = cycle[0]
        problems.append(
            ConfigProblem(
                str(origin.get(first, main)),
                f"programs.{first}.depends_on",
                "a dependency cycle: " + " -> ".join([*cycle, first]),
            )
        )
    return problems


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected knot, each starting at its smallest name."""
    found: list[list[str]] = []
    seen_in_cycle: set[str] = set()
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        on_path = {start}
        while stack:
            node, index = stack[-1]
            edges = graph.get(node, [])
            if index >= len(edges):
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            stack[-1] = (node, index + 1)
            nxt = edges[index]
            if nxt in on_path:
                cycle = path[path.index(nxt) :]
                if not seen_in_cycle.intersection(cycle):
                    low = cycle.index(min(cycle))
                    found.append(cycle[low:] + cycle[:low])
                    seen_in_cycle.update(cycle)
            elif nxt not in done:
                stack.append((nxt, 0))
                path.append(nxt)
                on_path.add(nxt)
    return found


def resolve(processes: Iterable[ProcessSpec]) -> dict[str, tuple[str, ...]]:
    """Process name -> the processes it depends on (of a config that passed `check`)."""
    specs = list(processes)
    by_program: dict[str, list[str]] = {}
    by_group: dict[str, list[str]] = {}
    for spec in specs:
        by_program.setdefault(spec.program, []).append(spec.name)
        by_group.setdefault(spec.group, []).append(spec.name)
    resolved: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        names: list[str] = []
        for entry in spec.settings.depends_on:
            if entry.endswith(":*"):
                targets = by_group.get(entry[:-2], [])
            else:
                targets = by_program.get(entry, [])
            names += [t for t in targets if t not in names and t != spec.name]
        if names:
            resolved[spec.name] = tuple(names)
    return resolved


def dependents(requires: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The reverse: process name -> the processes that depend on it."""
    reverse: dict[str, list[str]] = {}
    for name, needs in requires.items():
        for need in needs:
            reverse.setdefault(need, []).append(name)
    return {name: tuple(found) for name, found in reverse.items()}


def stop_waves(
    names: Iterable[str], requires: Mapping[str, tuple[str, ...]], priority: Mapping[str, int]
) -> list[list[str]]:
    """The order to stop `names` in: waves, each stopped before the next is asked. A process
    stops only once what depends on it (among `names`) has; of those free to stop, the highest
    priority number goes first (lower starts first and stops last)."""
    remaining = set(names)
    waves: list[list[str]] = []
    while remaining:
        blocked = {need for name in remaining for need in requires.get(name, ()) if need != name}
        free = [name for name in remaining if name not in blocked] or sorted(remaining)
        top = max(priority[name] for name in free)
        wave = sorted(name for name in free if priority[name] == top)
        waves.append(wave)
        remaining.difference_update(wave)
    return waves


def start_order(
    names: Iterable[str], requires: Mapping[str, tuple[str, ...]], priority: Mapping[str, int]
) -> list[str]:
    """The order to start `names` in: what a process depends on (among `names`) before it,
    then ascending priority, then the name."""
    remaining = set(names)
    order: list[str] = []
    while remaining:
        free = [
            name
            for name in remaining
            if not any(need in remaining for need in requires.get(name, ()) if need != name)
        ] or list(remaining)
        first = min(free, key=lambda name: (priority[name], name))
        order.append(first)
        remaining.discard(first)
    return order
