"""Alerts through apprise (the only apprise importer): events -> messages, off the supervision path.

`Notifier.on_event` runs on the bus, inside the supervision path, so it only decides and
enqueues: which events the config wants, whether they are suppressed (by the program's
cooldown for that event, or because the program is flapping: one crash loop pages once, with
`flapping`, then `recovered`), and what the message says. What is suppressed is counted and
summarised in the program's next message. A worker task takes messages off a bounded queue,
gathers what arrives within `batch` seconds into one digest per destination, and sends each
on threads of its own with retries, so a slow or dead channel never delays a restart nor
starves the daemon's shared thread pool. URLs appear in logs only in apprise's privacy form.

Routing: URLs in [notify].urls get every program's alerts (they are added with apprise's
"always" tag); URLs of an apprise config file get the alerts of programs whose notify_tags
they carry, and of programs without notify_tags.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import ConfigError, ConfigProblem
from sentinel.events import (
    BackoffStarted,
    Event,
    Fatal,
    Flapping,
    Healthy,
    NotificationResult,
    Recovered,
    Restart,
    RollingRestart,
    StateChanged,
    Unhealthy,
)
from sentinel.model import Config, NotifySection
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState, RestartReason
from sentinel.untrusted import clean

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
SEND_THREADS = 4  # sends blocked on a dead channel hold these, and nothing else
MUTED_WHILE_FLAPPING = ("restart", "backoff")
_SEVERITY = {"success": 0, "info": 1, "warning": 2, "failure": 3}


@dataclass(frozen=True)
class ProcessContext:
    """What a message says about a process beyond the event itself."""

    tags: tuple[str, ...]
    enabled: bool
    snapshot: ProcessSnapshot
    read_tail: Callable[[], str] | None  # the last lines of its log: reads a file, off the bus


@dataclass(frozen=True)
class Alert:
    process: str
    kind: str  # restart | backoff | fatal | flapping | unhealthy | recovered
    headline: str  # "web restarted (liveness failed 3x)"
    body: str  # what happened and the process's state
    footer: str  # what was suppressed since the last message
    notify_type: str  # apprise's: success | warning | failure
    tags: tuple[str, ...]
    read_tail: Callable[[], str] | None = None

    def text(self, tail: str) -> str:
        """The whole message, with the log's last lines read by the worker."""
        log = f"\n\nlast lines of the log:\n{tail.rstrip()}" if tail.strip() else ""
        return self.body + log + self.footer


@dataclass
class _Suppressed:
    """A program's alerts held back since its last message, by kind."""

    counts: Counter[str] = field(default_factory=Counter)
    since: float = field(default_factory=time.time)

    def note(self, process: str) -> str:
        if not self.counts:
            return ""
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        return f"\n({what} alerts for {process} were suppressed since {since})"


def _apprise() -> Any:
    """The apprise module, imported when first needed: it costs the daemon some 4 MB and a
    tenth of a second at start, which a config without [notify] URLs does not need."""
    import apprise  # noqa: PLC0415

    return apprise


def configured(section: NotifySection) -> bool:
    """Whether [notify] names any destination."""
    return bool(section.urls or section.config)


def build_apprise(section: NotifySection) -> tuple[apprise.Apprise, list[ConfigProblem]]:
    """The apprise object for [notify]; unusable URLs come back as problems naming the key."""
    apprise = _apprise()
    apobj = apprise.Apprise()
    problems = []
    for index, url in enumerate(section.urls):
        if not apobj.add(url, tag=apprise.common.MATCH_ALWAYS_TAG):
            problems.append(
                ConfigProblem(
                    "",
                    f"notify.urls[{index}]",
                    'expected an apprise URL like "mailto://..." or '
                    '"slack://..." that apprise can use',
                )
            )
    if section.config is not None:
        config = apprise.AppriseConfig()
        if not Path(section.config).is_file() or not config.add(section.config):
            problems.append(
                ConfigProblem(
                    "", "notify.config", f"cannot read the apprise config {section.config}"
                )
            )
        else:
            apobj.add(config)
    return apobj, problems


def check(config: Config) -> None:
    """Raise ConfigError if [notify] names URLs or a config apprise cannot use, or a program's
    notify_tags name a tag no URL carries (its alerts would go nowhere)."""
    if not configured(config.notify):
        return  # nothing to check, and no apprise to import
    apobj, problems = build_apprise(config.notify)
    if not problems and len(apobj) > 0:
        seen: set[tuple[str, str]] = set()
        for spec in config.processes:
            for tag in spec.settings.notify_tags:
                if (spec.program, tag) in seen:
                    continue
                seen.add((spec.program, tag))
                if not any(apobj.find(tag=[tag], match_always=False)):
                    problems.append(
                        ConfigProblem(
                            "",
                            f"programs.{spec.program}.notify_tags",
                            f"expected tags of the [notify] config's URLs: no URL has {tag!r}",
                        )
                    )
    if problems:
        raise ConfigError([ConfigProblem(str(config.path), p.key, p.message) for p in problems])


def private(service: Any) -> str:
    """A service's URL with passwords and tokens masked, for logs and reports."""
    return str(service.url(privacy=True)).split("?", 1)[0]


class Notifier:
    def __init__(
        self,
        section: NotifySection,
        context: Callable[[str], ProcessContext | None],
        publish: Callable[[Event], object],
        *,
        hostname: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_delay: float = 1.0,
    ) -> None:
        self._section = section
        self._apprise: apprise.Apprise | None = None
        if configured(section):
            self._apprise, _ = build_apprise(section)
        self._context = context
        self._publish = publish
        self._host = hostname or socket.gethostname()
        self._clock = clock
        self._retry_delay = retry_delay
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._last_sent: dict[tuple[str, str], float] = {}  # (process, kind) -> when
        self._suppressed: dict[str, _Suppressed] = {}
        self._flapping: set[str] = set()
        self._unhealthy: set[str] = set()  # so that `healthy` after `unhealthy` is a recovery
        self._announced: set[str] = set()  # in BACKOFF, with its crash told: skip its restart
        self._threads = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="sentinel-notify")
        self._sending: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    def reconfigure(self, section: NotifySection) -> None:
        """Take a reloaded [notify]; messages already queued go to the new destinations."""
        self._section = section
        self._apprise = build_apprise(section)[0] if configured(section) else None

    @property
    def enabled(self) -> bool:
        return self._apprise is not None and len(self._apprise) > 0

    # --- deciding (on the bus, synchronous) -------------------------------------------------

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        if self._announced_before(event):
            return
        found = self._describe(event)
        if found is None:
            return
        kind, process, headline, detail, notify_type = found
        if kind not in self._section.events:
            return
        if kind == "backoff":
            self._announced.add(process)
        context = self._context(process)
        if context is None or not context.enabled:
            return
        now = self._clock()
        last = self._last_sent.get((process, kind))
        cooling = last is not None and now - last < self._section.cooldown
        if cooling or (process in self._flapping and kind in MUTED_WHILE_FLAPPING):
            self._suppressed.setdefault(process, _Suppressed()).counts[kind] += 1
            self._publish(NotificationResult(result="suppressed", target="", title=headline))
            return
        self._last_sent[(process, kind)] = now
        held = self._suppressed.pop(process, None)
        alert = Alert(
            process,
            kind,
            headline,
            _body(detail, context.snapshot) + self._links(kind, context.snapshot),
            held.note(process) if held else "",
            notify_type,
            context.tags,
            context.read_tail,
        )
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            log.error("notification queue full: dropping %r", headline)
            self._publish(NotificationResult(result="failed", target="", title=headline))

    def _announced_before(self, event: Event) -> bool:
        """True for the restart that ends a backoff already told (one message per crash)."""
        if isinstance(event, StateChanged) and event.old is ProcessState.BACKOFF:
            if event.new is not ProcessState.STARTING:  # stopped or given up: no restart
                self._announced.discard(event.process)
            return False
        if isinstance(event, Restart) and event.process in self._announced:
            self._announced.discard(event.process)
            return event.reason in (
                RestartReason.EXITED,
                RestartReason.LIVENESS,
                RestartReason.WATCHDOG,
            )
        return False

    def _describe(self, event: Event) -> tuple[str, str, str, str, str] | None:
        """(kind, process, headline, detail, apprise type) for events that make messages."""
        if isinstance(event, Restart):
            why = event.detail or event.reason.value
            return "restart", event.process, f"{event.process} restarted ({why})", why, "warning"
        if isinstance(event, BackoffStarted):
            # The crash's news: its restart, after the delay, is not another message.
            context = self._context(event.process)
            why = context.snapshot.detail if context is not None else ""
            what = f"restarting in {event.delay:.3g}s (attempt {event.attempt})"
            what = f"{why}; {what}" if why else what
            return "backoff", event.process, f"{event.process} {what}", what, "warning"
        if isinstance(event, Fatal):
            return (
                "fatal",
                event.process,
                f"{event.process} FATAL ({event.detail})",
                event.detail,
                "failure",
            )
        if isinstance(event, Flapping):
            self._flapping.add(event.process)
            what = f"{event.restarts} restarts in {event.window:g}s"
            if event.stopped:
                what += ", stopped"
            return (
                "flapping",
                event.process,
                f"{event.process} is flapping ({what})",
                what,
                "failure",
            )
        if isinstance(event, RollingRestart) and event.phase == "stopped":
            # The deploy is half done: some instances run the new version, some the old.
            return (
                "rolling",
                event.process,
                f"{event.program}: rolling restart stopped at {event.process}",
                event.detail,
                "failure",
            )
        if isinstance(event, Unhealthy):
            self._unhealthy.add(event.process)
            return (
                "unhealthy",
                event.process,
                f"{event.process} unhealthy ({event.detail})",
                event.detail,
                "failure",
            )
        if isinstance(event, Recovered):
            self._flapping.discard(event.process)
            return (
                "recovered",
                event.process,
                f"{event.process} recovered ({event.detail})",
                event.detail,
                "success",
            )
        if isinstance(event, Healthy) and event.process in self._unhealthy:
            self._unhealthy.discard(event.process)
            what = f"healthy again: {event.detail}"
            return (
                "recovered",
                event.process,
                f"{event.process} recovered ({what})",
                what,
                "success",
            )
        return None

    def _links(self, kind: str, snapshot: ProcessSnapshot) -> str:
        """The runbook and dashboard lines, from the configured URL templates."""
        fields = {
            "process": snapshot.name,
            "program": snapshot.program,
            "group": snapshot.group,
            "event": kind,
            "host": self._host,
        }
        quoted = {k: urllib.parse.quote(v, safe="") for k, v in fields.items()}
        lines = [
            f"{label}: {template.format_map(quoted)}"
            for label, template in (
                ("runbook", self._section.runbook_url),
                ("dashboard", self._section.dashboard_url),
            )
            if template
        ]
        return "\n\n" + "\n".join(lines) if lines else ""

    # --- sending (the worker) ---------------------------------------------------------------

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self, grace: float = 5.0) -> None:
        """Send what is queued (within `grace` seconds), then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._queue.join()
                if self._sending:
                    await asyncio.wait(self._sending)
        self._worker.cancel()
        for task in self._sending:
            task.cancel()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = self._clock() + self._section.batch
            while (remaining := deadline - self._clock()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            tails = await asyncio.to_thread(_read_tails, batch)
            by_destination: dict[tuple[str, ...], list[tuple[Alert, str]]] = defaultdict(list)
            for alert, tail in zip(batch, tails, strict=True):
                by_destination[alert.tags].append((alert, alert.text(tail)))
            for tags, alerts in by_destination.items():
                title, body, notify_type = self._digest(alerts)
                services = self._services(tags)
                if not services:  # the apprise config changed on disk since it was checked
                    log.error("no notification URL has the tags %s: %s", ", ".join(tags), title)
                    self._publish(NotificationResult(result="failed", target="", title=title))
                for service in services:
                    task = asyncio.get_running_loop().create_task(
                        self._deliver(service, title, body, notify_type)
                    )
                    self._sending.add(task)
                    task.add_done_callback(self._sending.discard)
            for _ in batch:
                self._queue.task_done()

    def _services(self, tags: tuple[str, ...]) -> list[Any]:
        """The apprise services an alert with `tags` goes to (none if [notify] was emptied
        by a reload since it was queued)."""
        if self._apprise is None:
            return []
        return list(self._apprise.find(tag=list(tags) if tags else _apprise().common.MATCH_ALL_TAG))

    def _digest(self, alerts: list[tuple[Alert, str]]) -> tuple[str, str, str]:
        """One message for alerts going to the same place: (title, body, apprise type)."""
        prefix = f"[sentinel@{self._host}]"
        # The most severe first, in the title and the body: a FATAL must not read third.
        alerts = sorted(alerts, key=lambda a: -_SEVERITY.get(a[0].notify_type, 1))
        worst = alerts[0][0].notify_type
        if len(alerts) == 1:
            alert, text = alerts[0]
            return _safe(f"{prefix} {alert.headline}", text, worst)
        headlines = [a.headline for a, _ in alerts]
        title = f"{prefix} {len(alerts)} alerts: " + "; ".join(headlines[:3])
        if len(alerts) > 3:
            title += "; ..."
        body = "\n\n".join(f"== {a.headline}\n{text}" for a, text in alerts)
        return _safe(title, body, worst)

    async def _deliver(self, service: Any, title: str, body: str, notify_type: str) -> None:
        target = private(service)
        for attempt in range(self._section.retries + 1):
            try:
                send = functools.partial(_send_text, service, title, body, notify_type)
                ok = await asyncio.get_running_loop().run_in_executor(self._threads, send)
            except Exception as exc:  # a plugin's bug must not kill the worker
                log.warning("notification to %s raised %s", target, type(exc).__name__)
                ok = False
            if ok:
                self._publish(NotificationResult(result="sent", target=target, title=title))
                return
            if attempt < self._section.retries:
                await asyncio.sleep(self._retry_delay * 2**attempt)
        log.error(
            "notification to %s failed after %d attempts: %s",
            target,
            self._section.retries + 1,
            title,
        )
        self._publish(NotificationResult(result="failed", target=target, title=title))


TITLE_MAX = 250  # characters: a subject line, a Slack headline
BODY_MAX = 8000  # characters: room for the log's last lines, not for a flood


def _safe(title: str, body: str, notify_type: str) -> tuple[str, str, str]:
    """What a program or a probe target wrote reaches a pager or a mail client with its
    control characters escaped (the title on one line) and within bounded lengths."""
    return clean(title, TITLE_MAX), clean(body, BODY_MAX, newlines=True), notify_type


def _body(detail: str, snapshot: ProcessSnapshot) -> str:
    lines = [
        detail,
        "",
        f"state: {snapshot.state.name}",
        f"exit code: {'-' if snapshot.exit_code is None else snapshot.exit_code}",
        f"restarts: {snapshot.restarts}",
    ]
    failing = "; ".join(f"{p.probe}: {p.detail}" for p in snapshot.probes if not p.ok)
    if failing:
        lines.append(f"probe: {failing}")
    return "\n".join(lines)


def _send_text(service: Any, title: str, body: str, notify_type: str) -> bool:
    """Send a plain-text message through one service. Through an Apprise object of its own,
    because that is where apprise turns text into what the service speaks (an e-mail's HTML
    part gets its line breaks and its `<` escaped; Slack's markdown its escapes)."""
    apprise = _apprise()
    one = apprise.Apprise()
    one.add(service)
    return bool(
        one.notify(
            body=body, title=title, notify_type=notify_type, body_format=apprise.NotifyFormat.TEXT
        )
    )


def _read_tails(alerts: list[Alert]) -> list[str]:
    """The log tail of each alert's process (file reads: run off the loop)."""
    tails = []
    for alert in alerts:
        try:
            tails.append(alert.read_tail() if alert.read_tail is not None else "")
        except OSError:
            tails.append("")
    return tails


async def send_test(section: NotifySection, hostname: str | None = None) -> list[tuple[str, bool]]:
    """Send a test message to every configured URL; each one's private URL and result."""
    apobj, problems = build_apprise(section)
    if problems:
        raise ConfigError(problems)
    host = hostname or socket.gethostname()
    results = []
    for service in apobj.find(tag=_apprise().common.MATCH_ALL_TAG):
        ok = await asyncio.to_thread(
            service.notify,
            title=f"[sentinel@{host}] test notification",
            body="A test message from `sentinel notify-test`.",
            notify_type="info",
        )
        results.append((private(service), bool(ok)))
    return results
