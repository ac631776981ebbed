"""RL rollouts: a group's shared first prompt as one request against one request per episode.

    python -m bench.rollouts                         # 32 groups x 8, in-process and through serve-tinker
    python -m bench.rollouts --reps 8 --json bench/results/cpu-rollouts.json

One batch of ``rl/addition`` groups (``groups`` problems, ``group_size`` answers each, at most
``max_tokens`` sampled tokens) is rolled out by ``cookbook.rl.rollouts.run_groups``, which samples
a group's first replies in one request for ``group_size`` samples, and by the baseline, every
episode through ``run_episode`` on its own (one request per reply, what ``run_groups`` did before).
Both run on each backend: in-process (the local backend) and through ``cookbook serve-tinker``
started as a separate process on a free port (the official SDK as the client, as ``backend=tinker``
runs it). Repetitions alternate between the two sides so drifting machine load hits both alike; each
side reports its median seconds per batch and the baseline's ratio to it. The policy is ``tiny``'s
base weights (timing only: every reply runs to ``max_tokens``, as its answers rarely stop early).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.report import write_result


def _builders(groups: int, group_size: int) -> list:
    from cookbook.completers import renderer_for
    from cookbook.rl.task_env import TaskRLDataset
    from cookbook.tasks import AdditionTask

    task = AdditionTask()
    problems, _ = task.held_out_split(groups, 200, seed=0)
    dataset = TaskRLDataset(task, problems, renderer_for("tiny", "tiny"), groups_per_batch=groups,
                            group_size=group_size)
    return dataset.get_batch(0)


async def _per_episode(builders: list, sampler, settings) -> int:
    """The baseline: every episode samples its own first reply."""
    from cookbook.rl.rollouts import run_episode

    envs = [(g, i, env) for g, b in enumerate(builders) for i, env in enumerate(b.make_envs())]
    trajectories = await asyncio.gather(*(run_episode(env, sampler, settings, (g, 0, i)) for g, i, env in envs))
    return sum(len(t.transitions[0].action) for t in trajectories)


async def _shared(builders: list, sampler, settings) -> int:
    from cookbook.rl.rollouts import run_groups

    groups, dropped = await run_groups(builders, sampler, settings)
    if dropped:
        raise RuntimeError(f"{dropped} groups failed")
    return sum(len(t.transitions[0].action) for g in groups for t in g.trajectories)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server() -> Iterator[str]:
    """``cookbook serve-tinker`` in a child process; its base URL once it answers."""
    import urllib.request

    port = _free_port()
    child = subprocess.Popen([sys.executable, "-m", "recipes", "serve-tinker", "--port", str(port),
                              "--log_level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/api/v1/healthz", timeout=2).read()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    error = (child.stderr.read() if child.stderr else b"").decode()[-2000:]
                    raise RuntimeError(f"serve-tinker did not start: {error}") from None
                time.sleep(0.5)
        yield url
    finally:
        child.terminate()
        child.wait(30)


def _samplers(server_url: str | None) -> Iterator[tuple[str, object]]:
    import cookbook
    from cookbook.primitives import ready

    local = cookbook.service_client("local").create_lora_training_client(base_model="tiny", rank=32, seed=0)
    yield "in-process", ready(local.save_weights_and_get_sampling_client())
    if server_url is not None:
        import tinker

        os.environ.setdefault("TINKER_TELEMETRY", "0")
        service = tinker.ServiceClient(base_url=server_url, api_key="tml-local")
        remote = ready(service.create_lora_training_client(base_model="tiny", rank=32))
        yield "serve-tinker", ready(remote.save_weights_and_get_sampling_client())


def _time(rollout: Callable, builders: list, sampler: object, settings: object) -> tuple[float, int]:
    """Seconds one batch took, and the tokens it sampled."""
    started = time.perf_counter()
    tokens = asyncio.run(rollout(builders, sampler, settings))
    return time.perf_counter() - started, tokens


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=6)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-server", action="store_true", help="in-process only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from cookbook.rl.rollouts import RolloutSettings

    builders = _builders(args.groups, args.group_size)
    sides = {"one request per episode": _per_episode, "shared first prompt": _shared}
    result: dict = {"benchmark": "rollouts", "machine": platform.processor() or platform.machine(),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "groups": args.groups,
                    "group_size": args.group_size, "max_tokens": args.max_tokens, "reps": args.reps,
                    "backends": {}}
    with contextlib.ExitStack() as stack:
        url = None if args.no_server else stack.enter_context(_server())
        for backend, sampler in _samplers(url):
            times: dict[str, list[float]] = {side: [] for side in sides}
            tokens: dict[str, int] = {}
            for rep in range(args.warmup + args.reps):
                for side, rollout in sides.items():
                    settings = RolloutSettings(max_tokens=args.max_tokens, seed=rep)
                    seconds, tokens[side] = _time(rollout, builders, sampler, settings)
                    if rep >= args.warmup:
                        times[side].append(seconds)
            base = statistics.median(times["one request per episode"])
            rows = {}
            for side in sides:
                median = statistics.median(times[side])
                rows[side] = {"median_s": median, "seconds": times[side], "sampled_tokens": tokens[side],
                              "speedup": base / median}
                print(f"{backend:>12} | {side:>24}: median {median:.3f}s per batch, "
                      f"{tokens[side]} tokens, {base / median:.2f}x")
            result["backends"][backend] = rows
    write_result(args.json, result)
    return result


if __name__ == "__main__":
    main()
