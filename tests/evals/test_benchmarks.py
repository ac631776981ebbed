"""The built-in benchmarks: registry, loading from ../shared/data (skipped when absent), gold answers
graded correct, the Task interface, and loading errors."""

from __future__ import annotations

import json

import pytest

from cookbook.errors import ConfigError, DataError, MissingFileError, UserError
from cookbook.tasks import AdditionTask, Task
from evals.benchmarks import Benchmark, benchmark_names, get_benchmark
from evals.benchmarks.loading import DATA_DIR_ENV, load_rows

DATA_BENCHMARKS = {"gsm8k": 1319, "math500": 500, "aime24": 30, "amc23": 40, "svamp": 1000, "minerva_math": 272}


def gold_responses(name: str, row: dict, reference: str) -> dict[str, str]:
    """Responses a perfect model could give: the data's own worked solution when it has one, and the
    reference answer written the way the benchmark's instruction asks (or as a plain sentence)."""
    responses = {"boxed reference": f"So the final answer is $\\boxed{{{reference}}}$."}
    if name == "gsm8k":
        responses["gold solution"] = row["answer"]  # ends with "#### <n>"
    elif name in ("math500", "aime24", "minerva_math"):
        responses["gold solution"] = row["solution"]
    else:
        responses["answer sentence"] = f"The answer is {row.get('Answer', row.get('answer'))}."
    return responses


def test_registry_lists_every_builtin_and_rejects_unknown_names():
    code_choice_and_instructions = {"humaneval", "mbpp", "mmlu_pro", "gpqa_diamond", "ifeval"}  # tests of their own
    assert set(benchmark_names()) == {*DATA_BENCHMARKS, "addition", *code_choice_and_instructions}
    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'.*gsm8k"):
        get_benchmark("gsm9k")
    with pytest.raises(ConfigError, match="takes no source"):
        get_benchmark("addition", source="x.jsonl")
    for bad in ("addition:x", "addition:0", "addition:2:x", "addition:"):
        with pytest.raises(ConfigError, match="digits"):
            get_benchmark(bad)


@pytest.mark.parametrize("name", sorted(DATA_BENCHMARKS))
def test_benchmark_loads_and_grades_gold_answers_correct(name, data_dir):
    benchmark = get_benchmark(name, data_dir=str(data_dir))
    assert isinstance(benchmark, Task)
    examples = benchmark.examples()
    assert len(examples) == DATA_BENCHMARKS[name]
    assert len({e.id for e in examples}) == len(examples)
    assert all(e.messages[-1]["role"] == "user" and "\\boxed{}" in e.messages[-1]["content"] for e in examples)
    rows = load_rows(benchmark.source, benchmark.split)
    correct: dict[str, int] = {}
    for example, row in zip(examples, rows):
        for kind, response in gold_responses(name, row, example.reference).items():
            correct[kind] = correct.get(kind, 0) + int(benchmark.grade(example, response) == 1.0)
    rates = {kind: count / len(examples) for kind, count in correct.items()}
    print(name, rates)
    if name in ("gsm8k", "svamp"):
        assert all(rate == 1.0 for rate in rates.values()), rates
    elif name == "aime24":  # one of the 30 worked solutions states its answer without a box or "answer is"
        assert rates["boxed reference"] == 1.0 and correct["gold solution"] >= 29, rates
    else:
        assert all(rate >= 0.99 for rate in rates.values()), rates


@pytest.mark.parametrize("name", ["gsm8k", "svamp", "amc23", "aime24"])
def test_wrong_numbers_are_graded_wrong(name, data_dir):
    benchmark = get_benchmark(name, data_dir=str(data_dir))
    for example in benchmark.examples(limit=50):
        wrong = float(example.reference) + 1
        assert benchmark.grade(example, f"\\boxed{{{wrong:g}}}") == 0.0
        assert benchmark.extract(f"so \\boxed{{{example.reference}}}") == example.reference


def test_data_dir_from_the_environment_and_explicit_sources(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    assert get_benchmark("gsm8k").source == str(data_dir / "gsm8k" / "test.jsonl")
    train = get_benchmark("gsm8k", source=str(data_dir / "gsm8k" / "train.jsonl"))  # RL: the train split
    assert len(train.examples()) == 7473
    assert get_benchmark("gsm8k", split="train").source == str(data_dir / "gsm8k" / "train.jsonl")
    assert get_benchmark("math500", split="train").source.startswith("hf:")  # the folder holds only the test set
    with pytest.raises(ConfigError, match="only the test split"):
        get_benchmark("math500", split="train", data_dir=str(data_dir))
    rows = tmp_path / "mine.jsonl"
    rows.write_text(json.dumps({"question": "1+1?", "answer": "easy\n#### 2"}) + "\n")
    mine = get_benchmark("gsm8k", source=str(rows))
    assert [(e.reference, e.id) for e in mine.examples()] == [("2", "0")]


def test_the_benchmark_is_a_task_for_rl_and_sft(data_dir):
    gsm8k = get_benchmark("gsm8k", data_dir=str(data_dir))
    problems = gsm8k.problems(5, seed=3)
    assert problems == gsm8k.problems(5, seed=3) and problems != gsm8k.problems(5, seed=4)
    excluded = gsm8k.problems(10, seed=1, exclude={gsm8k.key(p) for p in problems})
    assert not {gsm8k.key(p) for p in excluded} & {gsm8k.key(p) for p in problems}
    assert gsm8k.grade(problems[0], f"\\boxed{{{problems[0].reference}}}") == 1.0
    conversation = gsm8k.conversation(problems[0])
    assert conversation[-1] == {"role": "assistant", "content": problems[0].reference}


def test_addition_is_the_quickstarts_held_out_set():
    benchmark = get_benchmark("addition")
    _, quickstart_test = AdditionTask(digits=2).held_out_split(40000, 200, seed=0)
    assert [e.messages for e in benchmark.examples()] == [p.messages for p in quickstart_test]
    assert [e.reference for e in benchmark.examples()] == [p.reference for p in quickstart_test]
    assert benchmark.max_tokens == 8 and benchmark.temperature == 0.0 and benchmark.instruction == ""
    example = benchmark.examples()[0]
    assert benchmark.grade(example, f" {example.reference} ") == 1.0 and benchmark.grade(example, "0") == 0.0
    first = get_benchmark("addition:3").examples(limit=1)[0].messages[0]["content"]
    assert len(first.split("+")[0]) == 3
    _, seed_one = AdditionTask(digits=2).held_out_split(0, 200, seed=1)  # `cookbook quickstart seed=1`
    assert [e.messages for e in get_benchmark("addition:2:1").examples()] == [p.messages for p in seed_one]


def test_instruction_override_and_a_new_benchmark_is_one_class(tmp_path):
    assert get_benchmark("addition", instruction="Answer with digits.").examples()[0].messages[0]["content"] \
        .endswith("\n\nAnswer with digits.")

    class Capitals(Benchmark):
        name = "capitals"
        max_tokens = 16

        def load(self):
            return [self.problem("fr", "Capital of France?", "Paris")]

    bench = Capitals()
    assert bench.grade(bench.examples()[0], "Paris") == 1.0


def test_loading_errors_are_user_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\nnot json\n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        get_benchmark("gsm8k", source=str(bad)).examples()
    no_marker = tmp_path / "nomarker.jsonl"
    no_marker.write_text('{"question": "q", "answer": "42"}\n')
    with pytest.raises(DataError, match="####"):
        get_benchmark("gsm8k", source=str(no_marker)).examples()
    wrong_fields = tmp_path / "fields.jsonl"
    wrong_fields.write_text('{"q": "q"}\n')
    with pytest.raises(DataError, match="none of the fields problem"):
        get_benchmark("math500", source=str(wrong_fields)).examples()
    with pytest.raises(MissingFileError):
        get_benchmark("math500", source=str(tmp_path / "missing.jsonl")).examples()
    with pytest.raises(UserError, match="no gsm8k/test.jsonl"):
        get_benchmark("gsm8k", data_dir=str(tmp_path))
