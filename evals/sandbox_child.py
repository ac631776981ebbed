"""The sandbox's inside: a fork server started by path (``python -I sandbox_child.py``) by ``evals.sandbox``.

It imports the standard library only (not ``evals``, not the parent's ``__main__``). It reads run
requests from a UNIX socket on fd 0: a JSON object (``workdir``, ``mode``: ``namespaces``,
``rlimits`` or ``probe``, and the limits of ``evals.sandbox.Limits``) with four file descriptors
(the program's stdin, stdout and stderr, and a status pipe), and answers each with the pid of a
*runner* it forks for that run. The runner leads a new session (the parent kills its process
group), sets up the isolation, runs ``main.py`` of the working directory in a fresh ``__main__``
and writes ``exit <code>`` (or ``setup <error>``) to the status pipe. Forking a warm interpreter
instead of starting one makes a run cost a few milliseconds.

Every mode (Linux, x86-64 or arm64):

- resource limits: ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
  ``RLIMIT_NPROC``, no core files;
- a seccomp filter (with ``no_new_privs``): ``socket()`` of any family but ``AF_UNIX`` fails with
  ``EPERM`` and ``io_uring`` (which could open sockets past the filter) is unavailable; unless
  ``subprocesses`` is set, creating a process fails with ``EPERM`` (``fork``, ``vfork``, ``clone``
  without ``CLONE_THREAD``; ``clone3`` answers ``ENOSYS`` so the C library falls back to ``clone``):
  a fork bomb cannot fork even as root, whom ``RLIMIT_NPROC`` does not bind. Threads are allowed
  (bounded by ``RLIMIT_AS``: each needs a stack);
- the working directory as ``cwd``, ``HOME`` and ``TMPDIR``, a minimal environment.

``namespaces`` adds (where root or unprivileged user namespaces allow ``unshare``):

- a user namespace in which the program is not root (its own uid, or 65534 when run by root) and
  holds no capability (cleared with ``capset``), so it cannot undo the rest;
- a network namespace: no interface but a loopback that is down (not even the host's 127.0.0.1);
- a PID namespace: the program is its PID 1, so when it ends or is killed (or the runner dies:
  parent-death signal) the kernel kills every process it started;
- a mount namespace: every mount remounted read-only, the working directory a fresh ``tmpfs`` of
  ``disk_mb`` megabytes holding copies of the files the parent put there.
"""

from __future__ import annotations

import builtins
import ctypes
import json
import os
import platform
import resource
import signal
import socket
import struct
import sys
import traceback
import types

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
CLONE_THREAD = 0x00010000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, SECCOMP_MODE_FILTER = 1, 4, 22, 38, 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
INNER_UID_FOR_ROOT = 65534
_FLAG_OPTIONS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                 "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
# filesystems without files of their own to protect; a failed read-only remount of one is tolerated
_SPECIAL_FILESYSTEMS = {"cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs", "tracefs", "pstore", "bpf",
                        "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "nsfs",
                        "rpc_pipefs", "selinuxfs"}

# seccomp: architecture tag and the system call numbers the filter looks at
_ARCHES = {"x86_64": dict(audit=0xC000003E, socket=41, clone=56, fork=57, vfork=58, clone3=435, io_uring=425,
                          x32_bit=0x40000000),
           "aarch64": dict(audit=0xC00000B7, socket=198, clone=220, fork=None, vfork=None, clone3=435, io_uring=425,
                           x32_bit=None)}
_AF_UNIX, _EPERM, _ENOSYS = 1, 1, 38
_RET_ALLOW, _RET_ERRNO, _RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(OSError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(s: str | None) -> bytes | None:
        return None if s is None else s.encode()
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {target}")


def _unescape(path: str) -> str:
    """Mount points in /proc/self/mountinfo escape space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# --- namespaces ---------------------------------------------------------------------------------
def enter_namespaces() -> None:
    """New user, mount, network, PID, IPC and UTS namespaces; the caller is not root inside."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid or INNER_UID_FOR_ROOT} {uid} 1")
    _write("/proc/self/gid_map", f"{gid or INNER_UID_FOR_ROOT} {gid} 1")


def isolate_filesystem(workdir: str, disk_mb: int) -> None:
    """Every mount read-only except ``workdir``, which becomes a fresh tmpfs holding its old files."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    files = {}
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk_mb}m,mode=0777")
    for name, data in files.items():
        with open(os.path.join(workdir, name), "wb") as f:
            f.write(data)
    with open("/proc/self/mountinfo") as f:  # (those under /proc/ are hidden by the new /proc next)
        mounts = [fields for fields in map(str.split, f) if not _unescape(fields[4]).startswith("/proc/")]
    _hide_host_processes()
    for fields in mounts:
        target, options = _unescape(fields[4]), fields[5].split(",")
        if target == workdir or "ro" in options:
            continue
        keep = sum(flag for name, flag in _FLAG_OPTIONS.items() if name in options)
        try:
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
        except SetupError:
            if fields[fields.index("-") + 1] not in _SPECIAL_FILESYSTEMS:
                raise


def _hide_host_processes() -> None:
    """A /proc of the new PID namespace over the host's (where the kernel allows it), else an empty
    read-only tmpfs: the program sees no process outside its namespace."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SetupError:
        _mount("tmpfs", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0555")


def drop_capabilities() -> None:
    """Clear every capability of this process (those it holds in its new user namespace)."""
    header = struct.pack("=Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # two (effective, permitted, inheritable) triples of 32-bit words, all zero
    _check(_libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")


# --- seccomp ------------------------------------------------------------------------------------
def seccomp_program(allow_subprocesses: bool) -> bytes | None:
    """The BPF filter (see the module docstring) for this machine's architecture; None when unknown."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    # (code, k, jump-if-true label, jump-if-false label): classic BPF jumps only forward, so every
    # label is an instruction after the jumps to it
    ld_w_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    program: list[tuple[int, int, str | None, str | None]] = [
        (ld_w_abs, 4, None, None), (jeq, arch["audit"], None, "kill"), (ld_w_abs, 0, None, None)]
    if arch["x32_bit"]:
        program.append((jge, arch["x32_bit"], "eperm", None))
    program += [(jeq, arch["socket"], "socket", None), (jeq, arch["io_uring"], "enosys", None)]
    if not allow_subprocesses:
        program += [(jeq, arch[name], "eperm", None) for name in ("fork", "vfork") if arch[name] is not None]
        program += [(jeq, arch["clone3"], "enosys", None), (jeq, arch["clone"], "clone", None)]
    program.append((ret, _RET_ALLOW, None, None))  # every other system call
    labels = {"socket": len(program)}
    program += [(ld_w_abs, 16, None, None), (jeq, _AF_UNIX, "allow", "eperm")]  # args[0], the low word
    labels["clone"] = len(program)
    program += [(ld_w_abs, 16, None, None), (jset, CLONE_THREAD, "allow", "eperm")]
    for name, value in (("allow", _RET_ALLOW), ("eperm", _RET_ERRNO | _EPERM), ("enosys", _RET_ERRNO | _ENOSYS),
                        ("kill", _RET_KILL)):
        labels[name] = len(program)
        program.append((ret, value, None, None))
    code = b""
    for i, (op, k, if_true, if_false) in enumerate(program):
        jt = labels[if_true] - i - 1 if if_true else 0
        jf = labels[if_false] - i - 1 if if_false else 0
        code += struct.pack("=HBBI", op, jt, jf, k)
    return code


def install_seccomp(allow_subprocesses: bool) -> bool:
    """Install the filter on this process; False when the architecture is unknown."""
    code = seccomp_program(allow_subprocesses)
    if code is None:
        return False

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
    prog = SockFprog(len(code) // 8, code)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")
    return True


# --- one run ------------------------------------------------------------------------------------
def apply_limits(config: dict) -> None:
    cpu = max(1, int(config["cpu_s"] + 0.999))
    memory, file_size = int(config["memory_mb"]) << 20, int(config["disk_mb"]) << 20
    limits = {resource.RLIMIT_CPU: (cpu, cpu + 1), resource.RLIMIT_AS: (memory, memory),
              resource.RLIMIT_FSIZE: (file_size, file_size), resource.RLIMIT_CORE: (0, 0),
              resource.RLIMIT_NOFILE: (config["open_files"], config["open_files"]),
              resource.RLIMIT_NPROC: (config["processes"], config["processes"])}
    for kind, value in limits.items():
        resource.setrlimit(kind, value)


_SOCKET_BLOCK_MESSAGE = "network access is disabled in the sandbox"


def _block_python_sockets() -> None:
    """Where no seccomp filter can be installed: at least Python's ``socket`` module refuses."""
    def blocked(*args: object, **kwargs: object) -> None:
        raise PermissionError(_SOCKET_BLOCK_MESSAGE)
    socket.socket = socket.create_connection = blocked  # type: ignore[assignment,misc]


def run_program(config: dict, *, namespaces: bool) -> int:
    """Isolate this process, then run ``main.py`` as ``__main__``; the exit code."""
    workdir = config["workdir"]
    if namespaces:
        isolate_filesystem(workdir, config["disk_mb"])
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        drop_capabilities()
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                       "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"})
    apply_limits(config)
    if not install_seccomp(config["subprocesses"]):
        _block_python_sockets()
    if config["mode"] == "probe":
        print("namespaces" if namespaces else "rlimits", flush=True)
        return 0
    return _execute(os.path.join(workdir, "main.py"))


def _execute(path: str) -> int:
    sys.argv = [path]
    sys.path[0:0] = [os.path.dirname(path)]
    main = types.ModuleType("__main__")
    main.__file__, main.__builtins__ = path, builtins
    sys.modules["__main__"] = main
    try:
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec"), main.__dict__)
        return 0
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - the program's own error: its traceback, exit status 1
        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed or broken stream: nothing more to say
                pass


def _attach_streams(stdin: int, stdout: int, stderr: int) -> None:
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)


def runner(config: dict, fds: list[int]) -> None:
    """The forked process of one run (never returns): a new session, the namespaces, then a child that
    isolates itself and runs the program, whose exit status this process reports."""
    stdin, stdout, stderr, status = fds
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _attach_streams(stdin, stdout, stderr)
    os.closerange(3, status)
    os.closerange(status + 1, 1 << 16)
    report = os.fdopen(status, "w")
    try:
        namespaces = config["mode"] != "rlimits"
        if namespaces:
            enter_namespaces()
        child = os.fork()
        if child == 0:  # with namespaces: PID 1 of the new PID namespace
            code = 125
            try:
                report.close()  # the program must not be able to report for itself
                code = run_program(config, namespaces=namespaces)
            except BaseException as exc:  # noqa: BLE001 - the isolation could not be set up
                print(f"sandbox setup failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            finally:
                os._exit(code & 0xFF)
        _, wait_status, usage = os.wait4(child, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        # a signal: 128 + its number, as shells say; and the CPU seconds the program used
        report.write(f"exit {128 - code if code < 0 else code} cpu {usage.ru_utime + usage.ru_stime:.3f}\n")
    except BaseException as exc:  # noqa: BLE001 - the setup failed before the program ran
        report.write(f"setup {type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
    report.flush()
    os._exit(0)


def serve(channel: socket.socket) -> None:
    """Answer run requests until the parent closes the channel."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # runners are reaped by the kernel
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 4)
        except OSError:
            return
        if not message:
            return
        try:
            config = json.loads(message)
            if len(fds) != 4:
                raise ValueError(f"expected 4 file descriptors, got {len(fds)}")
            pid = os.fork()
            if pid == 0:
                channel.close()
                runner(config, fds)
            channel.sendall(f"{pid}\n".encode())
        except Exception as exc:  # noqa: BLE001 - a bad request is answered, the server goes on
            channel.sendall(f"error {type(exc).__name__}: {exc}\n".replace("\n", " ").encode() + b"\n")
        finally:
            for fd in fds:
                os.close(fd)


def main() -> int:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the parent's death ends the server
    # Not dumpable (inherited by every runner and program): a program cannot open this process's or a
    # runner's descriptors through /proc/<pid>/fd, nor their memory, without CAP_SYS_PTRACE.
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    channel = socket.socket(fileno=os.dup(0))
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # fd 0 again, so no request's descriptor lands there
    serve(channel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
