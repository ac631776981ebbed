"""Prompt distillation: the teacher's answers become the student's conversations without the system
prompt; unparsed replies are dropped; the follow-rate check; the recipe end to end on tiny."""

from __future__ import annotations

import json
import re

import pytest
from fakes import FakeSampler

from cookbook.completers import MessageCompleter
from cookbook.distill.prompt import (
    follow_rate,
    query_of,
    regex_check,
    teacher_conversations,
    with_system_prompt,
    write_conversations,
)
from cookbook.errors import ConfigError, DataError
from cookbook.rows import read_jsonl
from cookbook.tokenizer_utils import get_tokenizer
from recipes.distill import prompt_distillation
from renderers import from_openai_messages, get_renderer

TOKENIZER = get_tokenizer("tiny")
RENDERER = get_renderer("tiny", TOKENIZER)
SYSTEM = "Answer with the sum in square brackets. Say nothing else. This sentence makes the prompt long."


def query(a: int, b: int) -> list[dict]:
    return [{"role": "user", "content": f"{a}+{b}"}]


def fake_teacher(prompts_seen: list[str], *, cut_off=lambda a, b: False) -> FakeSampler:
    """Answers the prompt's last ``a+b``: ``[sum]`` when the system prompt is in the prompt, the plain sum
    otherwise; with no end-of-turn token (so the reply does not parse) when ``cut_off(a, b)``."""
    def answer(tokens: list[int]) -> list[int]:
        text = TOKENIZER.decode(tokens)
        prompts_seen.append(text)
        a, b = map(int, re.findall(r"user\n(\d+)\+(\d+)<\|im_end\|>", text)[-1])
        reply = f"[{a + b}]" if SYSTEM in text else str(a + b)
        return TOKENIZER.encode(reply + ("" if cut_off(a, b) else "<|im_end|>"), add_special_tokens=False)
    return FakeSampler(answer)


def test_teacher_answers_under_the_system_prompt_become_conversations_without_it():
    seen: list[str] = []
    queries = [query(12, 30), query(5, 7), [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                           {"role": "user", "content": "40+2"}]]
    data = teacher_conversations(MessageCompleter(fake_teacher(seen), RENDERER, max_tokens=8, temperature=1.0),
                                 queries, SYSTEM, samples_per_query=2)
    assert len(seen) == 6 and all(text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>") for text in seen)
    answers = ["[42]", "[42]", "[12]", "[12]", "[42]", "[42]"]
    assert data.conversations == [[*queries[i // 2], {"role": "assistant", "content": a}]
                                  for i, a in enumerate(answers)]
    assert all(m["role"] != "system" for c in data.conversations for m in c)
    assert (data.n_queries, data.n_samples, data.n_unparsed, data.n_rejected) == (3, 6, 0, 0)


def test_unparsed_and_rejected_replies_are_dropped_and_counted():
    seen: list[str] = []
    teacher = MessageCompleter(fake_teacher(seen, cut_off=lambda a, b: a % 2 == 1), RENDERER, max_tokens=8)
    queries = [query(a, 10) for a in range(6)]
    data = teacher_conversations(teacher, queries, SYSTEM)
    assert data.n_unparsed == 3 and [c[0]["content"] for c in data.conversations] == ["0+10", "2+10", "4+10"]
    assert data.kept_fraction == 0.5
    kept = teacher_conversations(teacher, queries, SYSTEM, keep=lambda text: text != "[12]")
    assert (kept.n_unparsed, kept.n_rejected) == (3, 1)
    assert [c[-1]["content"] for c in kept.conversations] == ["[10]", "[14]"]
    with pytest.raises(ConfigError):
        teacher_conversations(teacher, queries, SYSTEM, samples_per_query=0)
    with pytest.raises(DataError, match="system message"):
        teacher_conversations(teacher, [[{"role": "system", "content": "x"}, *query(1, 2)]], SYSTEM)


def test_follow_rate_with_and_without_the_system_prompt():
    seen: list[str] = []
    completer = MessageCompleter(fake_teacher(seen, cut_off=lambda a, b: a == 3), RENDERER, max_tokens=8)
    queries = [query(a, 1) for a in range(4)]
    follows = regex_check(r"\[\d+\]")
    with_prompt = follow_rate(completer, queries, follows, system_prompt=SYSTEM)
    assert (with_prompt.rate, with_prompt.parse_ok) == (0.75, 0.75)  # the cut-off reply "[4]" does not count
    assert [r.text for r in with_prompt.replies] == ["[1]", "[2]", "[3]", "[4]"]
    without = follow_rate(completer, queries, follows)
    assert without.metrics() == {"follow_rate": 0.0, "parse_ok": 0.75}
    assert not any(SYSTEM in text for text in seen[4:])


def test_regex_check_matches_the_whole_reply():
    check = regex_check(r"\[(\d+)\]")
    assert check("[68]") and check(" [68]\n")
    assert not check("68") and not check("[68] done") and not check("The sum is [68]") and not check("[6a]")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        regex_check("[")


def test_queries_and_jsonl_round_trip(tmp_path):
    conversation = [*query(1, 2), {"role": "assistant", "content": "3"}]
    assert query_of(conversation) == query(1, 2)
    with pytest.raises(DataError):
        query_of([{"role": "assistant", "content": "3"}])
    assert with_system_prompt(query(1, 2), "S")[0] == {"role": "system", "content": "S"}
    path = write_conversations(tmp_path / "d" / "data.jsonl", [conversation, query(4, 5)])
    rows, _ = read_jsonl(path)
    assert [from_openai_messages(r["messages"]) for r in rows] == [conversation, query(4, 5)]


def test_the_recipe_teaches_a_teacher_distils_and_writes_its_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("COOKBOOK_CHECKPOINT_ROOT", str(tmp_path / "ckpt"))
    # a short prompt and a few fast warm-up steps: enough for the teacher's replies to parse (end their turn)
    common = dict(lora_rank=4, progress=False, max_tokens=8, batch_size=2, num_epochs=2, max_steps=2, eval_every=1,
                  system_prompt="Use brackets.", temperature=0.0)
    log_path = tmp_path / "pd"
    summary = prompt_distillation.main(prompt_distillation.Config(
        n_train=8, n_test=4, teacher_steps=8, teacher_batch_size=8, teacher_learning_rate=1e-2,
        log_path=str(log_path), **common))
    saved = json.loads((log_path / "summary.json").read_text())
    assert saved == summary and summary["steps"] == 2 and summary["n_test"] == 4
    for key in ("follow_rate_before", "follow_rate_after", "teacher_follow_rate", "correct_after"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["student_start"] == summary["teacher_path"]  # the student starts as the teacher
    assert (tmp_path / "pd_teacher" / "checkpoints.jsonl").exists()
    rows, _ = read_jsonl(log_path / "teacher_answers.jsonl")
    assert len(rows) == summary["n_train_conversations"] == 8 - summary["n_unparsed"]
    assert all(m["role"] != "system" for r in rows for m in r["messages"])
    metrics = [json.loads(line) for line in (log_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in metrics] == [0, 1] and all("follow/follow_rate" in r for r in metrics)

    # queries from a file need a teacher; with one they are split into training and held-out queries
    queries = tmp_path / "queries.jsonl"
    write_conversations(queries, [[*query(a, 3), {"role": "assistant", "content": str(a + 3)}] for a in range(10)])
    file_config = dict(queries=str(queries), n_test=3, log_path=str(tmp_path / "pd_file"), **common)
    with pytest.raises(ConfigError, match="teacher_path"):
        prompt_distillation.main(prompt_distillation.Config(**file_config))
    with pytest.raises(ConfigError, match="temperature"):  # n greedy samples would be n copies
        prompt_distillation.main(prompt_distillation.Config(samples_per_query=2, **file_config))
    summary = prompt_distillation.main(prompt_distillation.Config(teacher_path=summary["teacher_path"],
                                                                  **file_config))
    assert summary["n_test"] == 3 and summary["n_queries"] == 7 and "correct_after" not in summary
