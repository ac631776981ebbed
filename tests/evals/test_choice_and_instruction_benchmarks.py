"""Multiple choice (MMLU-Pro, GPQA Diamond) and IFEval-style instructions, on rows the tests write; each
loads by its hub id through ``datasets.load_dataset`` (stubbed here: no network)."""

from __future__ import annotations

import json

import pytest

from evals.benchmarks import get_benchmark, loading
from evals.choices import extract_choice
from evals.instructions import CHECKS, follows

MMLU_ROWS = [
    {"question_id": 70, "question": "What is 2 + 3?", "options": ["4", "5", "6", "7", "8"], "answer": "B",
     "answer_index": 1, "category": "math"},
    {"question_id": 71, "question": "Which is a noble gas?", "options": ["Oxygen", "Iron", "Neon"], "answer": "C",
     "answer_index": 2, "category": "chemistry"},
]
GPQA_ROWS = [
    {"Record ID": f"rec{i}", "Question": f"Question {i}?", "Correct Answer": f"right {i}",
     "Incorrect Answer 1": f"wrong {i}a", "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c"}
    for i in range(8)
]
IFEVAL_ROWS = [
    {"key": 1000, "prompt": "Write a haiku about rain. Do not use any commas and answer in lowercase letters only.",
     "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
     "kwargs": [{"num_words": None}, {"num_words": None}]},
    {"key": 1001, "prompt": "Describe Paris in at least 7 words. End with the phrase 'Is there anything else?'",
     "instruction_id_list": ["length_constraints:number_words", "startend:end_checker"],
     "kwargs": [{"num_words": 7, "relation": "at least", "end_phrase": None},
                {"end_phrase": "Is there anything else?", "num_words": None, "relation": None}]},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_mmlu_pro_rows_become_lettered_questions_graded_by_the_pick(tmp_path):
    bench = get_benchmark("mmlu_pro", source=write_jsonl(tmp_path / "mmlu.jsonl", MMLU_ROWS))
    first, second = bench.examples()
    assert first.id == "70" and first.reference == "B"
    assert "A) 4\nB) 5\nC) 6\nD) 7\nE) 8" in first.messages[-1]["content"]
    assert "The answer is (X)" in first.messages[-1]["content"]
    assert bench.grade(first, "2 + 3 = 5, so the answer is (B).") == 1.0
    assert bench.grade(first, "The answer is (C)") == 0.0
    assert bench.grade(second, "Neon is a noble gas.\n\nThe answer is (C)") == 1.0
    assert bench.grade(second, "The answer is (E)") == 0.0  # not one of its three options
    assert bench.grade(second, "I cannot tell.") == 0.0


@pytest.mark.parametrize(("reply", "pick"), [
    ("The answer is (D).", "D"), ("answer: b", "B"), ("**Answer:** (C)", "C"), ("\\boxed{A}", "A"),
    ("\\boxed{\\text{(B)}}", "B"), ("C", "C"), ("(A)", "A"), ("First (A) looks right but the answer is (B)", "B"),
    ("The answer is (Z)", None), ("no letter here", None),
])
def test_choice_extraction(reply, pick):
    assert extract_choice(reply, 5) == pick


def test_gpqa_options_are_shuffled_the_same_way_every_time(tmp_path):
    source = write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    problems = get_benchmark("gpqa_diamond", source=source).examples()
    again = get_benchmark("gpqa_diamond", source=source).examples()
    assert [p.messages for p in problems] == [p.messages for p in again]
    for i, problem in enumerate(problems):
        letter = problem.reference
        assert problem.options["ABCD".index(letter)] == f"right {i}"
        assert f"{letter}) right {i}" in problem.messages[-1]["content"]
    assert len({p.reference for p in problems}) > 1  # the right answer is not always in one place


def test_ifeval_rows_graded_by_every_instruction(tmp_path):
    bench = get_benchmark("ifeval", source=write_jsonl(tmp_path / "ifeval.jsonl", IFEVAL_ROWS))
    haiku, paris = bench.examples()
    assert haiku.id == "1000" and haiku.messages == [{"role": "user", "content": IFEVAL_ROWS[0]["prompt"]}]
    assert bench.grade(haiku, "soft rain on the roof\nsilver threads on quiet streets\nthe city exhales") == 1.0
    assert bench.followed(haiku, "Soft rain, on the roof") == [False, False]
    assert bench.followed(haiku, "soft rain, on the roof") == [False, True]
    assert bench.grade(paris, "Paris is a beautiful city of light. Is there anything else?") == 1.0
    assert bench.followed(paris, "Paris. Is there anything else?") == [False, True]


# (instruction, kwargs, a reply that follows it, a reply that does not)
INSTRUCTION_CASES = [
    ("keywords:existence", {"keywords": ["apple", "pie"]}, "I baked an Apple pie.", "I baked an apple tart."),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "A cat and a cat.",
     "A cat and a dog; concatenate."),
    ("keywords:forbidden_words", {"forbidden_words": ["bad", "awful"]}, "A badger is fine.", "That was Awful."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "less than"}, "Zoo zone.",
     "Zig zag zoom."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two!",
     "One. Two? Three."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.",
     "First part.\n\nSecond part."),
    ("length_constraints:number_words", {"num_words": 4, "relation": "at least"}, "one two three four",
     "one two three"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First we wait.\n\nThen we go.", "First we wait.\n\nAnd then we go."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].",
     "Dear [name], at home."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\n\nP.S. See you.", "Hello. See you."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Items:\n* one\n* two", "Items:\n* one\n* two\n- x"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes, definitely."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "A *bold* and *brave* plan.",
     "A *bold* plan."),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nIntro.\nSECTION 2\nBody.", "SECTION 1\nEverything."),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "a: 1"),
    ("detectable_format:title", {}, "<<A Poem>>\nRoses.", "A Poem\nRoses."),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "Answer one.\n******\nAnswer one."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Tell me a joke."}, "Tell me a joke. Why did...",
     "Why did the chicken..."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?",
     "Any other questions? Done."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "THIS is VERY important.", "This is VERY important."),
    ("change_case:english_capital", {}, "ALL CAPS HERE.", "All caps here."),
    ("change_case:english_lowercase", {}, "all lower here.", "all lower Here."),
    ("punctuation:no_comma", {}, "No commas here.", "Well, one comma."),
    ("startend:quotation", {}, '"Quoted reply."', 'Quoted "reply."'),
]


def test_every_instruction_but_language_has_a_case():
    assert {case[0] for case in INSTRUCTION_CASES} == set(CHECKS) - {"language:response_language"}


@pytest.mark.parametrize(("instruction", "kwargs", "good", "bad"), INSTRUCTION_CASES,
                         ids=[case[0] for case in INSTRUCTION_CASES])
def test_instruction_checks(instruction, kwargs, good, bad):
    assert follows(good, instruction, kwargs)
    assert not follows(bad, instruction, kwargs)


@pytest.mark.parametrize(("name", "rows", "hub_call"), [
    ("mmlu_pro", MMLU_ROWS, ("TIGER-Lab/MMLU-Pro", None, "test")),
    ("gpqa_diamond", GPQA_ROWS, ("Idavidrein/gpqa", "gpqa_diamond", "train")),
    ("ifeval", IFEVAL_ROWS, ("google/IFEval", None, "train")),
    ("mbpp", [{"task_id": 1, "text": "Add.", "code": "def add(a, b):\n    return a + b",
               "test_list": ["assert add(1, 2) == 3"]}], ("google-research-datasets/mbpp", "full", "test")),
])
def test_benchmarks_load_by_hub_id(name, rows, hub_call, monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return list(rows)
    monkeypatch.delenv(loading.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    loading._load_hub.cache_clear()
    try:
        problems = get_benchmark(name).examples()
    finally:
        loading._load_hub.cache_clear()
    assert calls == [hub_call]
    assert len(problems) == len(rows)
