"""Starting, stopping and signalling processes the way Supervisor's clients expect: its
startProcess, stopProcess and signalProcess methods, for one process, a group or all, with
supervisord's faults and per-process results (part of the namespace in rpcinterface.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable

from sentinel.api.control import Control
from sentinel.api.rpcinfo import (
    RUNNING_STATES,
    SIGNALLABLE_STATES,
    Lookup,
    Result,
    command_fault,
    fault_of,
    in_order,
    namespec,
    result,
    signal_of,
)
from sentinel.api.xmlrpc import Faults, RPCFault
from sentinel.model import ProcessSpec
from sentinel.states import ProcessState

S = ProcessState


class ProcessCommands:
    def __init__(self, control: Control, names: Lookup) -> None:
        self.control = control
        self._names = names

    async def start_process(self, name: str, wait: bool = True) -> object:
        """Start a process (name, group:name, or group:* for its group); with wait (the
        default), answer once it is RUNNING."""
        group, spec = self._names.target(name)
        if spec is None:
            return await self.start_process_group(group, wait)
        (entry,) = await self._start([spec], wait, skip_running=False)
        if entry["status"] != Faults.SUCCESS:
            raise fault_of(entry)
        return True

    async def start_process_group(self, name: str, wait: bool = True) -> list[Result]:
        """Start the group's processes that are not running; a result for each."""
        return await self._start(self._names.group(name), wait)

    async def start_all_processes(self, wait: bool = True) -> list[Result]:
        """Start every process that is not running; a result for each."""
        return await self._start(sorted(self.control.config.processes, key=in_order), wait)

    async def _start(
        self, specs: Iterable[ProcessSpec], wait: bool, skip_running: bool = True
    ) -> list[Result]:
        """Start those not running, together; a result for each, in supervisord's order: what
        failed at once, then what failed starting, then what started (each in priority
        order). supervisorctl's exit status is the last failure's. Without `skip_running`, a
        running one is ALREADY_STARTED."""
        specs = list(specs)
        before = {s.name: s.state for s in self._names.snapshots(p.name for p in specs)}
        at_once: list[Result] = []
        starting = []
        for spec in specs:
            state, unfit = before[spec.name], command_fault(spec)
            if state in RUNNING_STATES:
                if not skip_running:
                    at_once.append(result(spec, Faults.ALREADY_STARTED))
            elif unfit is not None:
                at_once.append(result(spec, unfit.code, unfit.text.partition(": ")[2]))
            elif state is S.STOPPING:  # supervisord cannot spawn it either
                stopping = f"{namespec(spec)} is stopping"
                at_once.append(result(spec, Faults.ABNORMAL_TERMINATION, stopping))
            else:
                starting.append(spec)
        started = await self._names.command(self.control.processes.start, starting, wait)
        after = {s.name: s.state for s in self._names.snapshots(p.name for p in starting)}
        failed, ok = [], []
        for spec in starting:
            if wait and started[spec.name]:
                ok.append(result(spec, Faults.SUCCESS))
            elif after[spec.name] in (S.BACKOFF, S.FATAL):  # exec failed, or an early exit
                failed.append(result(spec, Faults.SPAWN_ERROR))
            elif wait:
                failed.append(result(spec, Faults.ABNORMAL_TERMINATION))
            else:
                ok.append(result(spec, Faults.SUCCESS))
        return at_once + failed + ok

    async def stop_process(self, name: str, wait: bool = True) -> object:
        """Stop a process (name, group:name, or group:* for its group); with wait (the
        default), answer once it is stopped."""
        group, spec = self._names.target(name)
        if spec is None:
            return await self.stop_process_group(group, wait)
        (snapshot,) = self._names.snapshots([spec.name])
        if snapshot.state not in RUNNING_STATES:
            raise RPCFault(Faults.NOT_RUNNING, name)
        (entry,) = await self._stop([spec], wait)
        if entry["status"] != Faults.SUCCESS:
            raise fault_of(entry)
        return True

    async def stop_process_group(self, name: str, wait: bool = True) -> list[Result]:
        """Stop the group's running processes; a result for each."""
        return await self._stop(self._names.group(name), wait)

    async def stop_all_processes(self, wait: bool = True) -> list[Result]:
        """Stop every running process (in reverse priority); a result for each."""
        return await self._stop(sorted(self.control.config.processes, key=in_order), wait)

    async def _stop(self, specs: Iterable[ProcessSpec], wait: bool) -> list[Result]:
        specs = list(specs)
        states = {s.name: s.state for s in self._names.snapshots(p.name for p in specs)}
        running = [p for p in specs if states[p.name] in RUNNING_STATES]
        stopped = await self._names.command(self.control.processes.stop, running, wait)
        return [
            result(p, Faults.SUCCESS if stopped[p.name] else Faults.FAILED, "still running")
            for p in running
        ]

    async def signal_process(self, name: str, signal: str | int) -> object:
        """Send a signal (a name like "HUP", or a number) to a process's process group (name,
        group:name, or group:* for its group)."""
        group, spec = self._names.target(name)
        if spec is None:
            return await self.signal_process_group(group, signal)
        (entry,) = self._signal([spec], signal_of(signal), skip_unsignallable=False)
        if entry["status"] != Faults.SUCCESS:
            raise fault_of(entry)
        return True

    async def signal_process_group(self, name: str, signal: str | int) -> list[Result]:
        """Signal the group's running processes; a result for each."""
        return self._signal_each(self._names.group(name), signal)

    async def signal_all_processes(self, signal: str | int) -> list[Result]:
        """Signal every running process; a result for each."""
        return self._signal_each(sorted(self.control.config.processes, key=in_order), signal)

    def _signal_each(self, specs: Iterable[ProcessSpec], signal: str | int) -> list[Result]:
        specs = list(specs)
        try:
            sig = signal_of(signal)
        except RPCFault:  # supervisord reports it for each process it would have signalled
            states = {s.name: s.state for s in self._names.snapshots(p.name for p in specs)}
            return [
                result(p, Faults.BAD_SIGNAL, str(signal)[:100])
                for p in specs
                if states[p.name] in SIGNALLABLE_STATES
            ]
        return self._signal(specs, sig)

    def _signal(
        self, specs: list[ProcessSpec], sig: signal.Signals, skip_unsignallable: bool = True
    ) -> list[Result]:
        snapshots = {s.name: s for s in self._names.snapshots(p.name for p in specs)}
        results: dict[str, Result] = {}
        signalling = []
        for spec in specs:
            snapshot = snapshots[spec.name]
            if snapshot.state in SIGNALLABLE_STATES and snapshot.pid is not None:
                signalling.append(spec)
            elif snapshot.state in SIGNALLABLE_STATES or not skip_unsignallable:
                results[spec.name] = result(spec, Faults.NOT_RUNNING)
        if signalling:
            sent = self.control.processes.signal([p.name for p in signalling], sig)
            for spec in signalling:
                code = Faults.SUCCESS if sent[spec.name] else Faults.NOT_RUNNING
                results[spec.name] = result(spec, code)
        return [results[p.name] for p in specs if p.name in results]
