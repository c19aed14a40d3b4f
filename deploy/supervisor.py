"""A process supervisor for the cluster: start, watch, signal and stop a set of processes.

Every process runs in its own session (so its own process group): Ctrl-C in the terminal does not
reach it, a detached cluster outlives the command that started it, and a signal to the group
reaches anything the process itself started. Output goes to DATA_DIR/logs/NAME.log (appended, one
header line per start, so a restart's output follows the previous run's).

All that other commands need is in DATA_DIR/state.json (pids, process groups, argv, ports, start
times), written atomically and under a lock, so `dynalab kill NODE` in another shell works on a
cluster started by `dynalab up` in this one. A pid read from that file is trusted only if
/proc/PID still shows the same process: the same start time (in clock ticks since boot, fixed
for the life of a pid) and the same command line; a pid reused by an unrelated program is
reported dead and never signalled.

Data is never deleted here: stopping a process leaves its files alone.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterable, Iterator, Literal, Mapping, Sequence

from deploy.files import file_lock
from dynalab.files import atomic_write_text

__all__ = [
    "ClusterRunningError", "HealthCheck", "ProcessRecord", "ProcessSpec", "ProcessStatus",
    "StartAborted", "StartError", "Supervisor", "SupervisorError", "TcpCheck", "stop_on_signals",
]

Kind = Literal["node", "router", "replicator", "toxiproxy"]
State = Literal["alive", "paused", "dead"]

STATE_FILE = "state.json"
STATE_VERSION = 1
LOG_TAIL_LINES = 30
_POLL_S = 0.02
_KILL_WAIT_S = 5.0  # after SIGKILL a process is gone within milliseconds unless stuck in the kernel


class SupervisorError(RuntimeError):
    """A supervisor operation failed; the message says which process and why."""


class ClusterRunningError(SupervisorError):
    """`start` over a cluster whose processes are still running."""


class StartAborted(SupervisorError):
    """`start` was asked to stop (Ctrl-C / SIGTERM) before every process was healthy."""


class StartError(SupervisorError):
    """A process did not become healthy; `log_tail` holds the end of its log."""

    def __init__(self, name: str, reason: str, log_tail: str) -> None:
        super().__init__(f"{name} {reason}\n--- last lines of its log ---\n{log_tail}")
        self.name = name
        self.reason = reason
        self.log_tail = log_tail


@dataclass(frozen=True)
class TcpCheck:
    """Healthy when a TCP connection to host:port succeeds (the process is accepting)."""

    port: int
    host: str = "127.0.0.1"
    timeout_s: float = 0.25

    def __call__(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                return True
        except OSError:
            return False


HealthCheck = TcpCheck | Callable[[], bool]


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one process. `health` None means "running is healthy" (no port to probe).
    `log_path` defaults to DATA_DIR/logs/NAME.log; `env` is added to the supervisor's own."""

    name: str
    kind: Kind
    argv: tuple[str, ...]
    health: HealthCheck | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    cwd: Path | None = None
    log_path: Path | None = None
    ports: Mapping[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ProcessRecord:
    """A started process as kept in state.json: enough to find it, check it is still the same
    process, signal its group and start it again."""

    name: str
    kind: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None
    log_path: str
    ports: dict[str, int]
    tcp_health: tuple[str, int] | None  # a callable check cannot be kept; a TCP one can
    pid: int
    pgid: int
    start_ticks: int  # /proc/PID/stat field 22: identifies the process, unlike the pid alone
    started_at: float  # wall clock, for people

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        values = dict(data)
        values["argv"] = tuple(values["argv"])  # type: ignore[arg-type]
        health = values.get("tcp_health")
        values["tcp_health"] = (str(health[0]), int(health[1])) if health else None  # type: ignore[index]
        return cls(**values)  # type: ignore[arg-type]

    def spec(self, health: HealthCheck | None = None) -> ProcessSpec:
        if health is None and self.tcp_health:
            health = TcpCheck(host=self.tcp_health[0], port=self.tcp_health[1])
        return ProcessSpec(self.name, self.kind, self.argv, health, self.env,  # type: ignore[arg-type]
                           Path(self.cwd) if self.cwd else None, Path(self.log_path), self.ports)


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    kind: str
    state: State
    pid: int
    pgid: int
    ports: dict[str, int]
    started_at: float
    log_path: str


# -- /proc -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    start_ticks: int


def _read_stat(pid: int) -> _Stat | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    rest = data[data.rindex(")") + 2:].split()
    return _Stat(state=rest[0], pgrp=int(rest[2]), start_ticks=int(rest[19]))


def _read_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def _cmdline_matches(cmdline: list[str], argv: Sequence[str]) -> bool:
    if cmdline == list(argv):
        return True
    # A script run through its #! line shows up as [interpreter, script, args...].
    return len(argv) > 1 and len(cmdline) > len(argv) and cmdline[-len(argv):] == list(argv)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat and stat.pgrp == pgid and stat.state not in "ZX":
                members.append(int(entry))
    return members


# Popen objects of the children this process started: polled so that they do not linger as
# zombies (a zombie still has a /proc entry and would hold its group open), and kept after that
# for their exit codes. Keyed by pid: a later child with a reused pid replaces the entry.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap() -> None:
    for proc in _CHILDREN.values():
        if proc.returncode is None:
            proc.poll()


def _exit_code(pid: int) -> int | None:
    proc = _CHILDREN.get(pid)
    return proc.returncode if proc else None


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError as err:
        return f"(cannot read {path}: {err.strerror})"
    return "\n".join(text.splitlines()[-lines:])


# -- the supervisor --------------------------------------------------------------------------------

class Supervisor:
    """Starts and controls the processes of one data dir. Cheap to create: all state is in
    DATA_DIR/state.json, so any command can make one and act on a running cluster."""

    def __init__(self, data_dir: Path, grace_s: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self.grace_s = grace_s
        self.state_path = self.data_dir / STATE_FILE
        self.logs_dir = self.data_dir / "logs"
        self._health: dict[str, HealthCheck] = {}  # checks of processes started by this object

    # -- state file ------------------------------------------------------------------------------

    def _lock(self) -> AbstractContextManager[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return file_lock(self.data_dir / "state.lock")

    def records(self) -> dict[str, ProcessRecord]:
        """The processes state.json knows of, in start order (empty if there is none)."""
        if not self.state_path.exists():
            return {}
        data = json.loads(self.state_path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise SupervisorError(f"{self.state_path}: unknown state file version "
                                  f"{data.get('version')!r}")
        return {name: ProcessRecord.from_json(rec) for name, rec in data["processes"].items()}

    def _save(self, records: Mapping[str, ProcessRecord]) -> None:
        doc = {"version": STATE_VERSION, "data_dir": str(self.data_dir.resolve()),
               "supervisor_pid": os.getpid(), "updated_at": time.time(),
               "processes": {name: rec.to_json() for name, rec in records.items()}}
        atomic_write_text(self.state_path, json.dumps(doc, indent=2) + "\n", durable=True)

    def _record(self, name: str) -> ProcessRecord:
        records = self.records()
        if name not in records:
            known = ", ".join(records) or "none: no cluster has been started in this data dir"
            raise SupervisorError(f"no process named {name!r} (known: {known})")
        return records[name]

    # -- observing -------------------------------------------------------------------------------

    @staticmethod
    def state_of(rec: ProcessRecord) -> State:
        _reap()
        stat = _read_stat(rec.pid)
        if stat is None or stat.state in "ZX" or stat.start_ticks != rec.start_ticks:
            return "dead"
        if not _cmdline_matches(_read_cmdline(rec.pid), rec.argv):
            return "dead"
        return "paused" if stat.state == "T" else "alive"

    def status(self) -> list[ProcessStatus]:
        return [ProcessStatus(rec.name, rec.kind, self.state_of(rec), rec.pid, rec.pgid,
                              rec.ports, rec.started_at, rec.log_path)
                for rec in self.records().values()]

    def running(self) -> list[str]:
        """Names of processes that are alive or paused."""
        return [s.name for s in self.status() if s.state != "dead"]

    # -- starting --------------------------------------------------------------------------------

    def start(self, specs: Sequence[ProcessSpec], deadline_s: float = 30.0,
              stop: threading.Event | None = None) -> list[ProcessRecord]:
        """Start every process and return once all are healthy. On any failure, or when `stop`
        is set meanwhile, everything started is stopped again; a StartError names the process
        that failed (with its log tail)."""
        stop = stop or threading.Event()
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise SupervisorError(f"process names must be unique: {names}")
        with self._lock():
            running = self.running()
            if running:
                raise ClusterRunningError(
                    f"a cluster is already running from {self.data_dir} ({', '.join(running)}); "
                    f"stop it first (dynalab down)")
            started: dict[str, ProcessRecord] = {}
            try:
                for spec in specs:
                    _check_stop(stop)
                    started[spec.name] = self._spawn(spec)
                    self._save(started)  # at once: a crash here must not lose track of a child
                self._wait_healthy(specs, started, deadline_s, stop)
            except BaseException:
                self._stop_quietly(started.values())
                self.state_path.unlink(missing_ok=True)
                raise
            return list(started.values())

    def _spawn(self, spec: ProcessSpec) -> ProcessRecord:
        log_path = spec.log_path or self.logs_dir / f"{spec.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"--- dynalab: starting {spec.name} at {stamp}: "
                      f"{shlex.join(spec.argv)}\n".encode())
            log.flush()
            # start_new_session: setsid() in the child before exec, so pgid == pid once Popen
            # returns (Popen waits for the exec to succeed).
            proc = subprocess.Popen(spec.argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=spec.cwd,
                                    env={**os.environ, **spec.env}, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        stat = _read_stat(proc.pid)
        if spec.health is not None:
            self._health[spec.name] = spec.health
        tcp = (spec.health.host, spec.health.port) if isinstance(spec.health, TcpCheck) else None
        return ProcessRecord(spec.name, spec.kind, tuple(spec.argv), dict(spec.env),
                             str(spec.cwd) if spec.cwd else None, str(log_path), dict(spec.ports),
                             tcp, proc.pid, proc.pid, stat.start_ticks if stat else -1, time.time())

    def _wait_healthy(self, specs: Sequence[ProcessSpec], records: Mapping[str, ProcessRecord],
                      deadline_s: float, stop: threading.Event | None = None) -> None:
        deadline = time.monotonic() + deadline_s
        pending = {spec.name: spec for spec in specs}
        while pending:
            _check_stop(stop)
            for name, spec in list(pending.items()):
                rec = records[name]
                if self.state_of(rec) == "dead":
                    code = _exit_code(rec.pid)
                    how = f"exited with code {code}" if code is not None else "exited"
                    raise StartError(name, f"{how} before becoming healthy",
                                     _log_tail(Path(rec.log_path)))
                if _healthy(spec.health):
                    del pending[name]
            if pending and time.monotonic() >= deadline:
                name = next(iter(pending))
                raise StartError(name, f"did not become healthy within {deadline_s:g} s "
                                       f"(also waiting for: {', '.join(pending) or 'none'})",
                                 _log_tail(Path(records[name].log_path)))
            if pending:
                time.sleep(_POLL_S)

    # -- stopping --------------------------------------------------------------------------------

    def stop_all(self, grace_s: float | None = None) -> None:
        """`down`: stop every process (reverse start order) and forget the cluster's state.
        Raises if a process survives SIGKILL; the state file then still lists it."""
        with self._lock():
            records = self.records()
            for rec in reversed(list(records.values())):
                self._stop(rec, self.grace_s if grace_s is None else grace_s)
            self.state_path.unlink(missing_ok=True)

    def stop(self, name: str, grace_s: float | None = None) -> None:
        with self._lock():
            self._stop(self._record(name), self.grace_s if grace_s is None else grace_s)

    def _stop(self, rec: ProcessRecord, grace_s: float) -> None:
        """SIGTERM to the group, then SIGKILL after `grace_s`, waiting until the group is gone."""
        if not self._signal(rec, signal.SIGTERM):
            return
        self._signal(rec, signal.SIGCONT)  # a paused process only sees SIGTERM once continued
        if _wait_until(lambda: not self._group_alive(rec), grace_s):
            return
        self._signal(rec, signal.SIGKILL)
        if not _wait_until(lambda: not self._group_alive(rec), _KILL_WAIT_S):
            raise SupervisorError(f"{rec.name} (pid {rec.pid}) survived SIGKILL")

    def _stop_quietly(self, records: Iterable[ProcessRecord]) -> None:
        for rec in reversed(list(records)):
            try:
                self._stop(rec, self.grace_s)
            except SupervisorError:
                pass  # already failing; the caller's error is the one to report

    # -- signals ---------------------------------------------------------------------------------

    def _owns_group(self, rec: ProcessRecord) -> bool:
        """Whether process group rec.pgid is still the one we started. True if the leader is our
        process; also if the leader is gone but members remain (Linux never hands out a pid
        that is still some group's id, so those members are our leader's children)."""
        if self.state_of(rec) != "dead":
            return True
        return _read_stat(rec.pid) is None and bool(_group_members(rec.pgid))

    def _group_alive(self, rec: ProcessRecord) -> bool:
        return self.state_of(rec) != "dead" or bool(_group_members(rec.pgid))

    def _signal(self, rec: ProcessRecord, sig: int) -> bool:
        """Signal the process group if it is still ours; False if there is nothing to signal."""
        if rec.pgid <= 1 or rec.pgid == os.getpgrp():
            raise SupervisorError(f"refusing to signal process group {rec.pgid} of {rec.name}")
        if not self._owns_group(rec):
            return False
        try:
            os.killpg(rec.pgid, sig)
        except ProcessLookupError:
            return False
        return True

    def _live_record(self, name: str) -> ProcessRecord:
        rec = self._record(name)
        if self.state_of(rec) == "dead":
            raise SupervisorError(f"{name} is not running (pid {rec.pid} is gone)")
        return rec

    def kill(self, name: str) -> None:
        """kill -9 the process (and its group); returns once it is gone."""
        with self._lock():
            rec = self._live_record(name)
            self._signal(rec, signal.SIGKILL)
            if not _wait_until(lambda: not self._group_alive(rec), _KILL_WAIT_S):
                raise SupervisorError(f"{name} (pid {rec.pid}) survived SIGKILL")

    def pause(self, name: str) -> None:
        """SIGSTOP: the process is frozen (its sockets stay open, peers see silence)."""
        with self._lock():
            rec = self._live_record(name)
            self._signal(rec, signal.SIGSTOP)
            if not _wait_until(lambda: self.state_of(rec) != "alive", _KILL_WAIT_S):
                raise SupervisorError(f"{name} (pid {rec.pid}) did not stop on SIGSTOP")

    def resume(self, name: str) -> None:
        """SIGCONT: undo pause."""
        with self._lock():
            rec = self._live_record(name)
            self._signal(rec, signal.SIGCONT)
            if not _wait_until(lambda: self.state_of(rec) != "paused", _KILL_WAIT_S):
                raise SupervisorError(f"{name} (pid {rec.pid}) did not continue on SIGCONT")

    def restart(self, name: str, deadline_s: float = 30.0) -> ProcessRecord:
        """Stop the process if it runs, start it again with the same argv, env and log, wait
        until healthy, and record its new pid."""
        with self._lock():
            records = self.records()
            old = self._record(name)
            self._stop(old, self.grace_s)
            spec = old.spec(self._health.get(name))
            new = self._spawn(spec)
            records[name] = new
            self._save(records)
            try:
                self._wait_healthy([spec], records, deadline_s)
            except BaseException:
                self._stop_quietly([new])
                raise
            return new

    # -- foreground ------------------------------------------------------------------------------

    def serve(self, stop: threading.Event | None = None, poll_s: float = 0.5,
              on_exit: Callable[[ProcessStatus], None] | None = None) -> None:
        """Foreground mode: wait until `stop` is set (or SIGINT/SIGTERM arrives, when called from
        the main thread), reporting processes that die, then stop everything."""
        stop = stop or threading.Event()
        reported: set[tuple[str, int]] = set()
        with stop_on_signals(stop):
            try:
                while not stop.wait(poll_s):
                    for status in self.status():
                        if status.state == "dead" and (status.name, status.pid) not in reported:
                            reported.add((status.name, status.pid))
                            if on_exit:
                                on_exit(status)
            finally:
                self.stop_all()


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise StartAborted("start interrupted; stopping what was started")


def _healthy(check: HealthCheck | None) -> bool:
    if check is None:
        return True
    try:
        return bool(check())
    except Exception:  # a check that raises is a check that says "not yet"
        return False


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """While inside: SIGINT and SIGTERM set `stop` instead of killing this process, so a
    foreground cluster (even one still starting) is stopped in order rather than orphaned.
    Signal handlers exist only in the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
