"""Inspect AI on cookbook models: an Inspect task defined here, on a local dataset of the quickstart's
held-out additions, scores exactly what ``cookbook eval`` scores on the same problems against a
quickstart checkpoint, in process and through a Tinker-compatible server, by ``inspect``'s own
``eval`` on the ``cookbook/`` provider and by ``cookbook eval benchmark=inspect:<task>``; the eval
hook runs it every N steps."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import leading_digit
import pytest
from trained_tiny import checkpoints

from evals.benchmarks import get_benchmark
from recipes.__main__ import main as cookbook_main

inspect_ai = pytest.importorskip("inspect_ai")

N = 20
TASK_FILE = '''
import json
from inspect_ai import Task, task
from inspect_ai.dataset import Sample, json_dataset
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Score, Target, accuracy, scorer, stderr
from inspect_ai.solver import TaskState, generate


def first_digit(answer, reference):
    return answer.strip()[:1] == reference[:1]


@scorer(metrics=[accuracy(), stderr()])
def exact_sum():
    async def score(state: TaskState, target: Target) -> Score:
        answer = " ".join(state.output.completion.split())
        return Score(value=1.0 if answer == target.text else 0.0, answer=answer)
    return score


@scorer(metrics=[accuracy()])
def leading_digit():
    async def score(state: TaskState, target: Target) -> Score:
        return Score(value=float(first_digit(state.output.completion, target.text)),
                     answer=state.output.completion)
    return score


def problems():
    return json_dataset(DATA, lambda row: Sample(input=row["question"], target=row["answer"], id=row["id"]))


@task
def addition():
    return Task(dataset=problems(), solver=generate(), scorer=exact_sum(), config=GenerateConfig(max_tokens=8))


@task
def addition_leading_digit():
    return Task(dataset=problems(), solver=generate(), scorer=leading_digit(), config=GenerateConfig(max_tokens=8))
'''


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inspect-task")
    data = folder / "additions.jsonl"
    rows = [{"id": p.id, "question": p.messages[-1]["content"], "answer": p.reference}
            for p in get_benchmark("addition").examples(N)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = folder / "tasks.py"
    path.write_text(f"DATA = {str(data)!r}\n" + TASK_FILE)
    return path


@pytest.fixture(scope="module", autouse=True)
def _leading_digit_benchmark():
    with leading_digit.registered():
        yield


@pytest.fixture(scope="module")
def final(qs_run) -> str:
    return next(r["sampler_path"] for r in checkpoints(qs_run) if r["final"])


def cookbook_eval(tmp_path: Path, benchmark: str, checkpoint: str, *extra: str) -> tuple[dict, list[dict]]:
    out = tmp_path / benchmark.replace(":", "_").replace("/", "_").replace("@", "_")
    assert cookbook_main(["eval", f"benchmark={benchmark}", f"checkpoint={checkpoint}", f"output_dir={out}",
                          f"limit={N}", "progress=False", *extra]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return json.loads((out / "summary.json").read_text()), sorted(rows, key=lambda r: int(r["id"]))


def inspect_log_scores(log) -> tuple[float, list[str]]:
    samples = sorted(log.samples, key=lambda s: int(s.id))
    return log.results.scores[0].metrics["accuracy"].value, [s.output.completion for s in samples]


def test_inspect_task_scores_what_cookbook_eval_scores(task_file, final, tmp_path):
    ours, our_rows = cookbook_eval(tmp_path, "addition", final)
    ours_partial, _ = cookbook_eval(tmp_path, "addition_leading_digit", final)
    assert ours["examples"] == ours_partial["examples"] == N
    assert 0 < ours_partial["accuracy"] < 1  # a score that tells answers apart

    # `cookbook eval benchmark=inspect:<task>`: our run directory, the same answers and scores
    inspected, rows = cookbook_eval(tmp_path, f"inspect:{task_file}@addition", final)
    assert inspected["accuracy"] == ours["accuracy"] and inspected["examples"] == N
    assert [r["response"] for r in rows] == [r["response"] for r in our_rows]
    assert [r["score"] for r in rows] == [r["score"] for r in our_rows]
    assert inspected["inspect/exact_sum/accuracy"] == ours["accuracy"]
    partial, _ = cookbook_eval(tmp_path, f"inspect:{task_file}@addition_leading_digit", final)
    assert partial["accuracy"] == ours_partial["accuracy"]

    # Inspect's own eval on the provider: --model cookbook/<checkpoint>
    import evals.inspect_model  # noqa: F401 - registers the provider (the entry point does it for `inspect`)

    log = inspect_ai.eval(f"{task_file}@addition_leading_digit", model=f"cookbook/{final}",
                          log_dir=str(tmp_path / "logs"), display="none")[0]
    accuracy, answers = inspect_log_scores(log)
    assert accuracy == ours_partial["accuracy"]
    assert answers == [r["response"] for r in our_rows]


def test_the_same_through_a_tinker_compatible_server(task_file, final, tmp_path, monkeypatch):
    from cookbook.backend.tinker_server import ServerConfig, ServerThread

    monkeypatch.setenv("TINKER_API_KEY", "tml-inspect-test")
    monkeypatch.setenv("TINKER_TELEMETRY", "0")
    ours, our_rows = cookbook_eval(tmp_path, "addition_leading_digit", final)
    remote = final.replace("local://", "tinker://")
    with ServerThread(ServerConfig(port=0, log_level="warning")) as server:
        inspected, rows = cookbook_eval(tmp_path, f"inspect:{task_file}@addition_leading_digit", remote,
                                        "backend=tinker", f"base_url={server.url}")
        import evals.inspect_model  # noqa: F401

        log = inspect_ai.eval(f"{task_file}@addition_leading_digit", model=f"cookbook/{remote}",
                              model_base_url=server.url, model_args={"backend": "tinker"},
                              log_dir=str(tmp_path / "logs"), display="none")[0]
    assert inspected["accuracy"] == ours["accuracy"] and inspected["backend"] == "tinker"
    assert [r["response"] for r in rows] == [r["response"] for r in our_rows]
    accuracy, answers = inspect_log_scores(log)
    assert accuracy == ours["accuracy"] and answers == [r["response"] for r in our_rows]


def test_inspect_task_as_an_eval_hook(task_file, qs_run):
    import cookbook
    from cookbook.primitives import ready
    from cookbook.tokenizer_utils import get_tokenizer
    from evals.hooks import EvalHooksConfig, benchmark_hook
    from renderers import get_renderer

    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    hook = benchmark_hook(f"inspect:{task_file}@addition_leading_digit", renderer, limit=5, every=2)
    assert hook.every == 2
    final = next(r["sampler_path"] for r in checkpoints(qs_run) if r["final"])
    metrics = hook.fn(ready(cookbook.service_client("local").create_sampling_client(model_path=final)))
    assert set(metrics) >= {"accuracy", "stderr", "pass@1"} and 0 <= metrics["accuracy"] <= 1
    hooks = EvalHooksConfig(benchmarks=f"addition,inspect:{task_file}@addition", limit=3).hooks(renderer)
    assert set(hooks) == {"eval/addition", f"eval/inspect:{task_file}@addition"}


def test_the_inspect_entry_point_registers_the_provider():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["inspect_ai"] == {"cookbook": "evals.inspect_model"}
    from inspect_ai._util.registry import registry_find

    import evals.inspect_model  # noqa: F401

    assert registry_find(lambda info: info.type == "modelapi" and info.name.endswith("cookbook"))
    from importlib.metadata import entry_points

    installed = [ep for ep in entry_points(group="inspect_ai") if ep.name == "cookbook"]
    if installed:  # installed from this tree (as CI does): the entry point `inspect` loads resolves
        assert installed[0].load() is evals.inspect_model


def test_bad_inspect_tasks_are_user_errors(tmp_path, capsys):
    assert cookbook_main(["eval", "benchmark=inspect:no_such_file.py", "model=tiny", f"output_dir={tmp_path}",
                          "progress=False"]) == 2
    assert "inspect task" in capsys.readouterr().err
    assert cookbook_main(["eval", "benchmark=inspect:x.py", "source=a.jsonl", f"output_dir={tmp_path}"]) == 2


def test_inspect_task_in_a_sweep_table(task_file, qs_run, tmp_path):
    from evals.sweeps import SweepConfig, sweep

    spec = f"inspect:{task_file}@addition_leading_digit"
    config = SweepConfig(benchmarks=f"addition_leading_digit,{spec}", runs=str(qs_run), limit=10,
                         output_dir=str(tmp_path / "sweep"), progress=False)
    rows = sweep(config)
    by_checkpoint: dict[str, dict[str, float]] = {}
    for row in rows:
        by_checkpoint.setdefault(row["checkpoint"], {})[row["benchmark"]] = row["accuracy"]
    assert set(by_checkpoint) == {"step_000003", "final"}
    for scores in by_checkpoint.values():
        assert scores[spec] == scores["addition_leading_digit"]
    assert spec in (tmp_path / "sweep" / "results.md").read_text().splitlines()[0]
    again = sweep(config)  # finished cells are reused
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
