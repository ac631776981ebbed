"""The one row reader: every file format, every consumer (SFT conversations, DPO comparisons, a
benchmark source) reading the same fixture the same way, errors that name file and line, and
``datasets`` imported only when a source needs it."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cookbook.errors import DataError, MissingFileError
from cookbook.preference.data import load_comparisons
from cookbook.rows import read_rows
from cookbook.supervised.data import DatasetSpec, load_conversations
from evals.benchmarks import get_benchmark

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "rows.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def as_format(kind: str, directory: Path) -> Path:
    """The fixture's rows written as ``kind`` (a file, or a save_to_disk directory)."""
    if kind == "jsonl":
        return Path(shutil.copy(FIXTURE, directory / "rows.jsonl"))
    if kind == "jsonl.gz":
        path = directory / "rows.jsonl.gz"
        path.write_bytes(gzip.compress(FIXTURE.read_bytes()))
        return path
    if kind == "json":
        path = directory / "rows.json"
        path.write_text(json.dumps({"train": ROWS}, indent=1))
        return path
    import datasets

    dataset = datasets.Dataset.from_list(ROWS)
    if kind == "parquet":
        dataset.to_parquet(str(directory / "rows.parquet"))
        return directory / "rows.parquet"
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(directory / "saved"))
    return directory / "saved"


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "json", "parquet", "saved"])
def test_one_fixture_loads_as_sft_data_dpo_comparisons_and_a_benchmark(kind, tmp_path):
    source = str(as_format(kind, tmp_path))
    rows = read_rows(source, "train")
    assert list(rows) == ROWS and len(rows) == 3

    conversations = load_conversations(DatasetSpec(source))
    assert conversations == [row["messages"] for row in ROWS]

    comparisons = load_comparisons(source)
    assert [c.prompt for c in comparisons] == [[{"role": "user", "content": row["prompt"]}] for row in ROWS]
    assert [(c.chosen[0]["content"], c.rejected[0]["content"]) for c in comparisons] == [
        (row["chosen"], row["rejected"]) for row in ROWS]

    benchmark = get_benchmark("gsm8k", source=source, split="train")
    problems = benchmark.examples()
    assert [p.reference for p in problems] == ["42", "12", "42"]
    assert all(row["question"] in p.messages[-1]["content"] for p, row in zip(problems, ROWS))


def test_rows_name_their_place(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n" + FIXTURE.read_text())
    assert [read_rows(str(jsonl)).where(i) for i in range(3)] == [f"{jsonl}:{n}" for n in (2, 3, 4)]
    json_file = as_format("json", tmp_path)
    assert read_rows(str(json_file)).where(1) == f"{json_file} row 1"


@pytest.mark.parametrize("name,text,message", [
    ("bad.jsonl", '{"a": 1}\n{oops\n', r"bad.jsonl:2: not valid JSON .*each line must be one JSON object"),
    ("bad.json", '[\n{"a": 1},\n{oops}\n]', r"bad.json:3: not valid JSON"),
    ("list.jsonl", '{"a": 1}\n[1, 2]\n', r"list.jsonl:2: a row must be a JSON object, got list"),
    ("scalar.json", '{"test": []}', r"scalar.json: holds neither a list of rows nor a 'train' key"),
    ("rows.csv", "a,b\n", r"rows.csv: unsupported data file"),
])
def test_bad_files_are_one_line_data_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_rows(str(path))
    assert "\n" not in str(info.value)


def test_a_missing_source_and_a_missing_split(tmp_path):
    with pytest.raises(MissingFileError, match="no such file or directory.*hf:<name>"):
        read_rows(str(tmp_path / "nope.jsonl"))
    saved = as_format("saved", tmp_path)
    with pytest.raises(DataError, match=r"has splits \['train'\], not 'test'"):
        read_rows(str(saved), "test")


def test_the_not_valid_json_error_lives_in_one_module():
    holders = {p.relative_to(REPO).as_posix() for package in ("cookbook", "evals", "recipes")
               for p in (REPO / package).rglob("*.py") if "not valid JSON" in p.read_text()}
    assert holders == {"cookbook/rows.py"}


def test_everything_imports_and_reads_jsonl_without_datasets(tmp_path):
    """A GPU image without ``datasets`` still imports every module and reads JSONL; only Parquet, saved
    and hub sources need it."""
    script = f"""
import importlib, pkgutil, sys
sys.modules["datasets"] = None  # importing it now fails, as where it is not installed
import cookbook, evals, recipes
for package in (cookbook, evals, recipes):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
from cookbook.rows import read_rows
assert len(read_rows({str(FIXTURE)!r})) == 3
try:
    read_rows({str(as_format("parquet", tmp_path))!r})
except ImportError:
    print("parquet needs datasets")
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "parquet needs datasets"


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "json", "parquet", "saved"])
def test_streamed_rows_equal_read_rows(kind, tmp_path):
    from cookbook.rows import iter_rows

    source = str(as_format(kind, tmp_path))
    rows = read_rows(source, "train")
    assert list(iter_rows(source, "train")) == [(row, rows.where(i)) for i, row in enumerate(rows)]
    streamed = load_conversations(DatasetSpec(source), limit=2, streaming=True)
    assert streamed == [row["messages"] for row in ROWS[:2]] == load_conversations(DatasetSpec(source), limit=2)


def test_streaming_stops_at_the_limit_and_names_a_bad_line(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(FIXTURE.read_text() + "not json\n")
    assert len(load_conversations(DatasetSpec(str(path)), limit=3, streaming=True)) == 3  # never reads line 4
    with pytest.raises(DataError, match="big.jsonl:4"):
        load_conversations(DatasetSpec(str(path)), streaming=True)
