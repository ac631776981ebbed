"""Run untrusted Python (a model's code) in a separate, limited process, and always come back.

    result = run_python("print(sum(range(10)))", limits=Limits(timeout_s=5))
    result.status, result.stdout          # "ok", "45\\n"

A fork server (``evals/sandbox_child.py``, one light process started on first use) forks each run
from a warm interpreter, so a run costs milliseconds, not an interpreter start. Each run gets a
fresh temporary working directory (removed afterwards) holding ``main.py`` and any
``files`` given, the program's ``stdin``, and these limits (:class:`Limits`):

- wall clock ``timeout_s`` (then the process group is killed: ``status="timeout"``) and CPU
  ``cpu_s`` per process (``RLIMIT_CPU``: ``SIGXCPU``, then ``SIGKILL`` a second later, which is
  what a program running as PID 1 of its namespace gets, as PID 1 ignores ``SIGXCPU``); a program
  either signal ends after using its CPU time also gets ``timeout``, so a busy loop is a timeout
  whichever limit it reaches first;
- memory ``memory_mb`` of address space per process (``RLIMIT_AS``: allocations fail);
- output ``max_output_bytes`` of stdout and stderr together: past it the program is killed
  (``status="output_limit"``), so a huge print costs neither memory nor time here;
- files ``disk_mb`` (``RLIMIT_FSIZE`` per file; with namespaces also the working directory's size);
- no new processes unless ``subprocesses=True`` (a seccomp filter; threads are allowed), so a fork
  bomb fails its first fork; ``processes`` (``RLIMIT_NPROC``) bounds processes and threads of
  users other than root;
- no network: ``socket()`` of any family but ``AF_UNIX`` fails (the same filter).

Isolation (:func:`isolation` says which mode this machine gets, tried once):

- ``namespaces`` (Linux where root or unprivileged user namespaces may ``unshare``): also a network
  namespace with no interface up, a PID namespace (every process the program started dies with
  it), a mount namespace in which the whole filesystem is read-only except the working directory
  (a size-capped tmpfs), and a user namespace in which the program holds no capability;
- ``rlimits`` (containers that forbid ``unshare``): the limits and the filter only. The program can
  then write wherever its user may: run hostile code in a container or VM there. Where the filter
  is unavailable too (not x86-64 / arm64 Linux), Python's ``socket`` module is disabled instead, a
  block that ``_socket`` or ``ctypes`` get around.

Linux only. ``$COOKBOOK_SANDBOX=rlimits`` forces the second mode. At most :data:`MAX_PARALLEL`
programs run at once (one per CPU); further calls wait their turn, so graders may call from many
threads.

May import the standard library only (the child script is run by path).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_PARALLEL", "Execution", "Limits", "isolation", "run_python"]

CHILD = Path(__file__).with_name("sandbox_child.py")
MODE_ENV = "COOKBOOK_SANDBOX"
MAX_PARALLEL = max(1, os.cpu_count() or 1)
_SLOTS = threading.BoundedSemaphore(MAX_PARALLEL)
_SETUP_FAILED = 125
# How a run ends at its CPU limit (exit status 128 + signal), and how far below ``cpu_s`` the CPU
# time it reports may read then (the kernel accounts CPU time in ticks).
_CPU_LIMIT_SIGNALS = (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
_CPU_SLACK_S = 0.05


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, for the whole run
    cpu_s: float = 10.0  # CPU seconds per process
    memory_mb: int = 1024  # address space per process
    processes: int = 64  # processes and threads (RLIMIT_NPROC)
    max_output_bytes: int = 1 << 20  # stdout + stderr
    disk_mb: int = 64  # largest file (and, with namespaces, the whole working directory)
    open_files: int = 256
    subprocesses: bool = False  # allow the program to start processes


@dataclass(frozen=True)
class Execution:
    """What happened. ``status``: ``ok`` (exit 0), ``error`` (another exit status or a signal),
    ``timeout`` (the wall clock or the CPU time ran out), ``output_limit`` or ``setup_error`` (the
    sandbox itself could not start)."""

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_python(code: str, *, stdin: str = "", files: Mapping[str, str] | None = None,
               limits: Limits = Limits()) -> Execution:
    """Run ``code`` as ``main.py`` (its ``__main__``) in a fresh sandbox; see the module docstring."""
    with _SLOTS:
        workdir = Path(tempfile.mkdtemp(prefix="cookbook-sandbox-"))
        try:
            for name, text in {**(files or {}), "main.py": code}.items():
                if "/" in name or name.startswith("."):
                    raise ValueError(f"sandbox file names are plain names, got {name!r}")
                (workdir / name).write_text(text)
            return _run(workdir, isolation(), stdin, limits)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@functools.cache
def isolation() -> str:
    """``namespaces`` or ``rlimits``: what this machine allows (see the module docstring), tried once."""
    forced = os.environ.get(MODE_ENV)
    if forced in ("namespaces", "rlimits"):
        return forced
    if forced:
        raise ValueError(f"${MODE_ENV} must be namespaces or rlimits, got {forced!r}")
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the code sandbox runs on Linux only (it relies on prctl, seccomp and namespaces)")
    workdir = Path(tempfile.mkdtemp(prefix="cookbook-sandbox-probe-"))
    try:
        probe = _run(workdir, "probe", "", Limits(timeout_s=30))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return "namespaces" if probe.ok and probe.stdout.strip() == "namespaces" else "rlimits"


class _ForkServer:
    """The process that forks every run (``sandbox_child.py``), started on first use and again after a
    crash; one per process (a forked child of ours starts its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None

    def start_run(self, config: dict[str, Any], fds: list[int]) -> int:
        """Send one run request with its four descriptors; the runner's pid."""
        message = json.dumps(config).encode()
        with self._lock:
            for _attempt in range(2):
                channel = self._running()
                try:
                    socket.send_fds(channel, [message], fds)
                    reply = channel.recv(4096).decode().strip()
                except OSError:
                    reply = ""
                if reply.isdigit():
                    return int(reply)
                if reply.startswith("error"):
                    raise RuntimeError(f"the sandbox server refused a run: {reply}")
                self._stop()  # it died: start a fresh one and try once more
            raise RuntimeError("the sandbox server did not answer")

    def _running(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._channel is not None:
            return self._channel
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen([sys.executable, "-I", str(CHILD)], stdin=theirs,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self._channel = ours
        return ours

    def _stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def forget(self) -> None:
        """In a forked child: leave the parent's server to the parent."""
        self._lock = threading.Lock()
        self._process, self._channel = None, None


_SERVER = _ForkServer()
atexit.register(_SERVER.close)
os.register_at_fork(after_in_child=_SERVER.forget)


def _run(workdir: Path, mode: str, stdin: str, limits: Limits) -> Execution:
    config = {"workdir": str(workdir), "mode": mode, **asdict(limits)}
    started = time.monotonic()
    pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, status
    theirs = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
    ours = {"stdin": pipes[0][1], "stdout": pipes[1][0], "stderr": pipes[2][0], "status": pipes[3][0]}
    try:
        pid = _SERVER.start_run(config, theirs)
    except BaseException:
        for fd in (*theirs, *ours.values()):
            os.close(fd)
        raise
    for fd in theirs:
        os.close(fd)
    try:
        out, err, report, reason = _communicate(ours, stdin.encode(), started + limits.timeout_s,
                                                limits.max_output_bytes)
    finally:
        if not report:  # still running (timeout, output limit): end the run's process group
            _kill(pid)
        for fd in ours.values():
            try:
                os.close(fd)
            except OSError:
                pass
    fields = report.split()
    code = int(fields[1]) if report.startswith("exit ") else None
    cpu_used = float(fields[3]) if len(fields) >= 4 and fields[2] == "cpu" else 0.0
    if reason is not None:
        status, code = reason, None
    elif code is None or code == _SETUP_FAILED:
        status, code = "setup_error", None
        err = err or report.encode()
    elif code in _CPU_LIMIT_SIGNALS and cpu_used >= limits.cpu_s - _CPU_SLACK_S:
        status, code = "timeout", None  # out of CPU time: a time limit, like the wall clock's
    else:
        status = "ok" if code == 0 else "error"
    return Execution(status, code, out.decode(errors="replace"), err.decode(errors="replace"),
                     round(time.monotonic() - started, 3))


def _communicate(fds: dict[str, int], stdin: bytes, deadline: float,
                 max_output: int) -> tuple[bytes, bytes, str, str | None]:
    """stdout, stderr, the runner's report, and ``timeout`` / ``output_limit`` (None when it ended by itself)."""
    chunks: dict[int, list[bytes]] = {fds["stdout"]: [], fds["stderr"]: [], fds["status"]: []}
    total, sent, reason = 0, 0, None
    selector = selectors.DefaultSelector()
    for fd in chunks:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    if stdin:
        os.set_blocking(fds["stdin"], False)
        selector.register(fds["stdin"], selectors.EVENT_WRITE)
    else:
        os.close(fds["stdin"])
        fds["stdin"] = -1
    try:
        while selector.get_map() and reason is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = "timeout"
                break
            for key, _ in selector.select(min(remaining, 1.0)):
                if key.events & selectors.EVENT_WRITE:
                    try:
                        sent += os.write(key.fd, stdin[sent:sent + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the program does not read its input
                        sent = len(stdin)
                    if sent >= len(stdin):
                        selector.unregister(key.fd)
                        os.close(key.fd)
                        fds["stdin"] = -1
                    continue
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fd)
                    continue
                if key.fd == fds["status"]:
                    chunks[key.fd].append(data)
                    continue
                chunks[key.fd].append(data[: max(0, max_output - total)])
                total += len(data)
                if total > max_output:
                    reason = "output_limit"
                    break
    finally:
        selector.close()
    report = b"".join(chunks[fds["status"]]).decode(errors="replace").strip()
    if reason is None and not report:
        reason = "timeout"
    return b"".join(chunks[fds["stdout"]]), b"".join(chunks[fds["stderr"]]), report if reason is None else "", reason


def _kill(pid: int) -> None:
    """SIGKILL the run's process group (with namespaces, PID 1's death then takes every other process)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
