"""The code sandbox: hostile programs end in a failure within the limits, and the next run works.

Each hostile program runs in both isolation modes where this machine has them (``namespaces``
needs root or unprivileged user namespaces; ``rlimits`` is forced through ``$COOKBOOK_SANDBOX``).
"""

from __future__ import annotations

import socket
import time

import pytest

from evals import sandbox
from evals.sandbox import Limits, run_python

LIMITS = Limits(timeout_s=1.0, cpu_s=1.0, memory_mb=128, max_output_bytes=100_000)  # for the hostile programs
SLACK_S = 1.5  # process start-up and teardown on a busy machine

HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "sleep_forever": "import time\ntime.sleep(3600)\n",
    "memory_hog": "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 2**20))\n",
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "fork_bomb_ignoring_errors": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                                 "        pass\n",
    "subprocess": "import subprocess\nsubprocess.run(['sh', '-c', 'sleep 3600 &'])\n",
    "huge_print": "while True:\n    print('x' * 100_000)\n",
}


def _namespaces_available() -> bool:
    sandbox.isolation.cache_clear()
    return sandbox.isolation() == "namespaces"


MODES = ["namespaces", "rlimits"] if _namespaces_available() else ["rlimits"]


@pytest.fixture(params=MODES)
def mode(request, monkeypatch):
    monkeypatch.setenv(sandbox.MODE_ENV, request.param)
    sandbox.isolation.cache_clear()
    yield request.param
    sandbox.isolation.cache_clear()


def assert_next_run_works() -> None:
    result = run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n", stdin="1 2 3\n")
    assert (result.status, result.stdout) == ("ok", "6\n")


def test_a_plain_program_runs_with_its_files_and_stdin(mode):
    result = run_python("import json\nprint(json.load(open('data.json'))['x'] + int(input()))\n",
                        files={"data.json": '{"x": 40}'}, stdin="2\n")
    assert result.ok and result.stdout == "42\n" and result.exit_code == 0
    failing = run_python("raise SystemExit(3)")
    assert (failing.status, failing.exit_code) == ("error", 3)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_fails_within_the_limits_and_the_next_run_works(mode, name):
    result = run_python(HOSTILE[name], limits=LIMITS)
    assert not result.ok
    assert result.seconds <= LIMITS.timeout_s + SLACK_S
    expected = {"infinite_loop": {"timeout"}, "sleep_forever": {"timeout"}, "memory_hog": {"error"},
                "fork_bomb": {"error"}, "fork_bomb_ignoring_errors": {"timeout"}, "subprocess": {"error"},
                "huge_print": {"output_limit"}}[name]
    assert result.status in expected, result
    if name == "memory_hog":
        assert "MemoryError" in result.stderr
    if name.startswith("fork_bomb") or name == "subprocess":
        assert result.status == "timeout" or "PermissionError" in result.stderr
    if name == "huge_print":
        assert len(result.stdout) + len(result.stderr) <= LIMITS.max_output_bytes
    assert_next_run_works()


def test_running_out_of_cpu_time_is_a_timeout(mode):
    """A busy loop under a long wall clock ends at its CPU limit (SIGXCPU), reported as a timeout."""
    result = run_python("while True:\n    pass\n", limits=Limits(timeout_s=20.0, cpu_s=1.0, memory_mb=128))
    assert (result.status, result.exit_code) == ("timeout", None)
    assert result.seconds < 20.0
    assert_next_run_works()


def test_no_network_even_to_the_hosts_loopback(mode):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                "s.sendall(b'escaped')\nprint('connected')\n")
        result = run_python(code, limits=LIMITS)
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing connected, not even a handshake in the backlog
    assert not result.ok and "connected" not in result.stdout
    assert result.seconds <= LIMITS.timeout_s + SLACK_S
    raw = run_python(f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\n", limits=LIMITS)
    assert not raw.ok  # the C-level socket module is blocked too
    assert_next_run_works()


def test_writes_outside_the_working_directory_fail(mode, tmp_path):
    if mode == "rlimits":
        pytest.skip("without namespaces the sandbox does not protect the filesystem (documented)")
    target = tmp_path / "escaped.txt"
    code = (f"open({str(target)!r}, 'w').write('escaped')\n")
    result = run_python(code, limits=LIMITS)
    assert not result.ok and "Read-only file system" in result.stderr
    assert not target.exists()
    inside = run_python("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n")
    assert inside.ok and inside.stdout == "ok\n"  # the working directory is writable
    too_big = run_python("open('big', 'wb').write(b'x' * (80 << 20))\n", limits=Limits(disk_mb=16, timeout_s=5))
    assert not too_big.ok  # the working directory's size is capped
    assert_next_run_works()


def test_runs_in_parallel_from_many_threads(mode):
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: run_python(f"print({i} * {i})"), range(8)))
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(8)]
    assert time.monotonic() - started < 30


def test_the_program_sees_no_process_outside_its_namespace(mode):
    if mode == "rlimits":
        pytest.skip("without namespaces the program shares the host's PID namespace (documented)")
    result = run_python("import os\nprint(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n")
    assert result.ok and eval(result.stdout) in ([], ["1"])


def test_a_crashed_fork_server_is_replaced(mode):
    assert run_python("print('before')").stdout == "before\n"
    sandbox._SERVER._process.kill()
    sandbox._SERVER._process.wait()
    assert run_python("print('after')").stdout == "after\n"
