"""The environment a child starts with: what it is configured with, never sentinel's secrets.

A child gets sentinel's environment (as supervisord's children do), less what is sentinel's
own business, plus its program's `environment` and the variables that say who it is:

- variables the config references as `${VAR}` outside `[programs.*]` (a `[notify]` URL's
  `${SMTP_PASSWORD}`, a `[control]` password) are sentinel's secrets: no child inherits them.
  A program that needs one names it in its own `environment` (`PASS = "${SMTP_PASSWORD}"`).
- the service manager's variables for sentinel itself (`NOTIFY_SOCKET`, `WATCHDOG_*`,
  `LISTEN_*`): a child that inherited them could speak to systemd in sentinel's name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# systemd's variables for the service it started (sentinel), not for its children.
SERVICE_MANAGER = frozenset(
    {
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    }
)


class ChildEnvironment:
    """Builds children's environments; `hidden` are the names a child must not inherit."""

    def __init__(
        self,
        hidden: Iterable[str] = (),
        identity: Mapping[str, str] | None = None,
        base: Mapping[str, str] | None = None,
    ) -> None:
        self._base = os.environ if base is None else base
        self.hidden = frozenset(hidden)
        self._identity = dict(identity or {})  # added to every child's: the daemon's run id

    def update(self, hidden: Iterable[str]) -> None:
        """A reload: the config may reference other variables now."""
        self.hidden = frozenset(hidden)

    def inherited(self) -> dict[str, str]:
        """What every child inherits from sentinel."""
        drop = self.hidden | SERVICE_MANAGER
        return {k: v for k, v in self._base.items() if k not in drop}

    def build(self, configured: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
        """A child's environment: inherited, then its `configured` environment, then `own`
        (who it is: its name, its group, the daemon's run id), which nothing overrides."""
        return {**self.inherited(), **configured, **own, **self._identity}
