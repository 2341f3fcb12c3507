"""Reading one section's values: the %(name)s expansions supervisord gives that section, typed
values, and errors at the key's file and line.

supervisord expands `%(ENV_X)s` from its environment when it starts, so these stay `${X}`
for sentinel to expand when it starts, unless the config's own `environment` sets X (then
the value is known now). A value that must be a number today (a priority, a timeout) reads
the variable now, from the environment of the import, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from sentinel.errors import ConfigError
from sentinel.importer.conf import Conf, Report
from sentinel.importer.values import Env, Expansion, Template, expand, key_value_pairs

T = TypeVar("T")


@dataclass
class Context:
    """What every section is read against."""

    conf: Conf
    environ: Mapping[str, str]
    node: str  # this host's name, for %(host_node_name)s
    report: Report = field(default_factory=Report)
    # [supervisord] environment: every program gets it, and %(ENV_X)s reads it
    environment: dict[str, Template] = field(default_factory=dict)


class Section:
    """One section's values, expanded as supervisord expands them there."""

    def __init__(self, ctx: Context, name: str, names: Mapping[str, Expansion]) -> None:
        self.ctx = ctx
        self.name = name
        self.names: dict[str, Expansion] = {"here": ctx.conf.here, **names}

    @property
    def subject(self) -> str:
        return f"[{self.name}]"

    def has(self, key: str) -> bool:
        return self.ctx.conf.has(self.name, key)

    def warn(self, key: str | None, message: str) -> None:
        place = self.ctx.conf.place(self.name, key)
        self.ctx.report.warn(place, self.subject + (f" {key}" if key else ""), message)

    def error(self, key: str | None, message: str) -> ConfigError:
        return self.ctx.conf.error(self.name, key, message)

    def lookup_for(self, key: str) -> Callable[[str], Expansion | None]:
        def lookup(name: str) -> Expansion | None:
            if name in self.names:
                if name == "host_node_name":
                    self.warn(key, f"%(host_node_name)s written as {self.ctx.node}, this host")
                return self.names[name]
            if not name.startswith("ENV_"):
                return None
            variable = name[4:]
            if variable in self.ctx.environment:
                return self.ctx.environment[variable]
            if variable not in self.ctx.environ:
                self.warn(
                    key,
                    f"{variable} is not set here: sentinel needs it in its environment "
                    f"(${{{variable}}})",
                )
            return Template((Env(variable),))

        return lookup

    def template(self, key: str) -> Template | None:
        """The value, expanded; None when the section does not set it."""
        raw = self.ctx.conf.raw(self.name, key)
        if raw is None:
            return None
        try:
            return expand(raw, self.lookup_for(key))
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def text(self, key: str) -> str | None:
        """The value as text now: a variable in it is read from the import's environment."""
        value = self.template(key)
        if value is None:
            return None
        if value.env_names:
            names = ", ".join(value.env_names)
            self.warn(key, f"{names} read now, at the import: the value is fixed")
        try:
            return value.resolve(self.ctx.environ)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def typed(self, key: str, parse: Callable[[str], T]) -> T | None:
        text = self.text(key)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def pairs(self, key: str) -> dict[str, Template]:
        value = self.template(key)
        if value is None:
            return {}
        try:
            return key_value_pairs(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
