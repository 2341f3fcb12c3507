"""One command against several daemons at once, and what the operator is told about each.

Each server gets a thread and a `Daemon` of its own, so a slow or dead host costs its own
timeout and nothing else. A host that cannot be reached, or refuses, is reported on stderr as
soon as it fails, and again in the summary; the others answer as usual.

Exit codes: each host's result is what the command alone would give for it (0 ok, 1 a named
process is not in the wanted state, 2 a usage or connection error: unreachable, refused, no
such process), and the command exits with the worst of them. A fleet command therefore exits
2 when any host failed, even if every host that answered is fine: what the failed hosts run is
unknown, and a script must not take it for done.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TextIO, TypeVar

from sentinel.cli.client import Credentials, Daemon, DaemonError
from sentinel.cli.exitcodes import EXIT_OK, EXIT_USAGE
from sentinel.cli.output import Style
from sentinel.cli.servers import Server, Servers
from sentinel.errors import ControlError

T = TypeVar("T")


@dataclass
class Answer(Generic[T]):
    """What one host gave: a value, problems it reported with parts of the command, or a
    failure that stopped it."""

    server: Server
    value: T | None = None
    problems: list[ControlError] = field(default_factory=list)
    failure: ControlError | None = None


class Fleet:
    """The servers of a command, and its stderr."""

    def __init__(
        self,
        servers: Servers,
        *,
        credentials: Credentials | None,
        timeout: float,
        wait_limit: float | None,
        stderr: TextIO = sys.stderr,
    ) -> None:
        self.servers = servers.servers
        self.labelled = servers.fleet
        self._credentials = credentials
        self._timeout, self._wait_limit = timeout, wait_limit
        self._stderr = stderr
        self._errors = Style.of(stderr)
        self.lock = threading.Lock()  # one writer at a time, on stdout and stderr

    def host(self, server: Server) -> str | None:
        """The HOST label of an answer, or None when answers are not labelled."""
        return server.label if self.labelled else None

    def ask(self, work: Callable[[Daemon, Answer[T]], T]) -> list[Answer[T]]:
        """`work` against every server at once; the answers in the servers' order. `work` may
        add problems to its answer (a name one host does not know) and go on. A bug in `work`
        is raised here; so is BrokenPipeError, at once, when stdout's reader has left."""
        answers = [Answer[T](server) for server in self.servers]
        done: queue.Queue[BaseException | None] = queue.Queue()

        def run(answer: Answer[T]) -> None:
            outcome: BaseException | None = None
            try:
                with Daemon(
                    answer.server,
                    credentials=self._credentials,
                    timeout=self._timeout,
                    wait_limit=self._wait_limit,
                ) as daemon:
                    answer.value = work(daemon, answer)
            except ControlError as exc:
                answer.failure = exc
                self.report(answer.server, exc)
            except Exception as exc:
                outcome = exc
            finally:
                done.put(outcome)

        for answer in answers:
            # daemon threads: Ctrl-C on a follow ends the command without waiting for them
            threading.Thread(target=run, args=(answer,), daemon=True).start()
        for _ in answers:
            error = done.get()
            if error is not None:
                raise error
        return answers

    def report(self, server: Server, error: ControlError) -> None:
        """Tell the operator, now, what went wrong with one host."""
        if not self.labelled:
            message = str(error)
        elif isinstance(error, DaemonError):
            message = error.in_fleet()
        else:
            message = f"{server.label}: {error}"
        self.warn(message)

    def warn(self, message: str) -> None:
        """`sentinel: MESSAGE` on stderr; lines after the first (a rejected config's
        problems) indented under it."""
        first, *more = message.split("\n")
        lines = [
            f"sentinel: {self._errors.line(first)}",
            *(f"  {self._errors.line(m)}" for m in more),
        ]
        with self.lock:
            print("\n".join(lines), file=self._stderr, flush=True)

    def finish(self, answers: Sequence[Answer[T]], codes: Sequence[int] = ()) -> int:
        """The exit code (the worst of every host's), after a summary of failed hosts."""
        failed = [a for a in answers if a.failure is not None]
        if self.labelled and failed:
            names = ", ".join(a.server.label for a in failed)
            self.warn(
                f"{len(answers) - len(failed)} of {len(answers)} hosts answered; failed: {names}"
            )
        worst = max([EXIT_OK, *codes])
        if failed or any(a.problems for a in answers):
            worst = EXIT_USAGE
        return worst

    def problem(self, answer: Answer[T], error: ControlError) -> None:
        """A host answered, but refused part of the command: reported now, and exit 2."""
        answer.problems.append(error)
        self.report(answer.server, error)
