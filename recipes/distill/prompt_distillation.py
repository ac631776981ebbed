"""Prompt (context) distillation: the student learns to behave as if a long system prompt were there.

    cookbook run distill/prompt_distillation start_path=local://...   # teacher warm-up from a checkpoint that adds
    cookbook run distill/prompt_distillation teacher_path=local://... queries=queries.jsonl follow_regex='...'

A teacher answers training queries with ``system_prompt`` in front (``samples_per_query`` samples at
``temperature``; replies that did not parse are dropped, and with ``drop_unfollowed`` those that do
not match ``follow_regex``); the student is trained by SFT on query + answer *without* the system
prompt (``cookbook.distill.prompt``, then the SFT loop). Held-out queries measure, greedily: the
student's rate of following the instruction without the prompt before and after, the teacher's rate
with it, and, for a built-in task, how many answers are right. ``summary.json`` holds the numbers and
``teacher_answers.jsonl`` the training conversations.

Queries are a built-in task (``addition``: the default) or a ``.jsonl``/``.json``/``.parquet`` file
of ``{"messages": [...]}`` conversations (a trailing assistant answer is ignored; ``n_test`` of them
are held out). The default instruction, in a few sentences of system prompt, is to write the sum in
square brackets (``[68]``); ``follow_regex`` (a full match of the reply) checks it.

The teacher: ``teacher_path`` when given. Otherwise, for the tiny model, one is taught here first
(run directory ``<log_path>_teacher``, reused by a rerun): ``teacher_steps`` of SFT from
``start_path`` (a checkpoint that already adds, e.g. the quickstart's; the base model when unset)
on addition conversations, half with the system prompt and the bracketed sum, half without it and
the plain sum. So the teacher follows the prompt only when it sees it.

The student starts from ``load_checkpoint_path``, by default the teacher's own weights: prompt distillation
is one model learning to act without the prompt as it acts with it, and the teacher is the model
that has been shown, explicitly, to answer plainly without the prompt; so "before" is a real 0% and
everything the student gains comes from the distilled answers. The held-out queries are in neither
the teacher's warm-up nor the distillation data.

Measured on 2 CPU cores shared with 3-4 other jobs, defaults, ``start_path`` = the quickstart's final
checkpoint (100% held-out addition): the teacher (200 warm-up steps) follows the 180-character
prompt on 100% of the 200 held-out queries with it (87% right sums) and on 0% without it; after 40
steps of SFT on its greedy answers to 1024 training queries the student, without the prompt, follows
it on 100% (already at step 10), 0% before; right sums 94.5% -> 88% (the teacher's level). 644 s in
all, ~130 s of it after the teacher (``teacher_path=`` the same teacher). Teacher samples at
``temperature=1.0`` instead: 100% follow, 75% right after 16 steps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import chz

from cookbook.completers import MessageCompleter, known_renderer, renderer_for, sampling_client
from cookbook.config import make_service
from cookbook.distill.prompt import (
    follow_rate,
    query_of,
    regex_check,
    teacher_conversations,
    with_system_prompt,
    write_conversations,
)
from cookbook.errors import ConfigError, DataError
from cookbook.hooks import Hook
from cookbook.primitives import SamplingClient, ServiceClient
from cookbook.recipe_cli import run_recipe
from cookbook.run import sub_run
from cookbook.supervised.data import DatasetSpec, conversations_to_data, load_conversations, split_train_test
from cookbook.supervised.train import TrainConfig, train
from cookbook.tasks import AdditionTask, Problem, Task, task_from_spec
from renderers import Message, Renderer

SYSTEM_PROMPT = (
    "You are the answer engine of a bookkeeping tool. Each message is a sum such as 23+45. "
    "Reply with the exact sum in square brackets, like [68], and nothing else: no words, no spaces."
)


@chz.chz
class Config(TrainConfig):
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    system_prompt: str = SYSTEM_PROMPT
    follow_regex: str = r"\[(\d+)\]"  # a reply follows the instruction when it matches in full; group 1 is the answer
    queries: str = "addition"  # a built-in task, or a .jsonl/.json/.parquet file of {"messages": [...]}
    n_train: int = 1024  # training queries
    n_test: int = 200  # held-out queries
    samples_per_query: int = 1
    temperature: float = 0.0  # the teacher's sampling temperature (0: greedy; raise it with samples_per_query > 1)
    max_tokens: int = 16  # per reply (teacher and measurements)
    drop_unfollowed: bool = False  # also drop teacher replies that do not match follow_regex
    teacher_path: str | None = None  # the teacher's checkpoint; unset: taught here (addition only)
    start_path: str | None = None  # where the teacher warm-up starts (a checkpoint that adds); unset: the base model
    teacher_steps: int = 200
    teacher_batch_size: int = 32
    teacher_learning_rate: float = 2e-3
    # the student's SFT
    learning_rate: float = 1e-3
    warmup_steps: int = 5
    grad_clip_norm: float = 1.0
    batch_size: int | None = 64
    num_epochs: int = 3
    max_steps: int | None = 40
    eval_every: int = 10
    log_path: str = "runs/prompt_distillation"


def teacher_warm_up_conversations(task: AdditionTask, n: int, system_prompt: str, *, seed: int,
                                  exclude: set[str]) -> list[list[Message]]:
    """Addition conversations, every other one with the system prompt and the bracketed sum, the
    rest without it and the plain sum."""
    conversations = []
    for i, problem in enumerate(task.problems(n, seed=seed, exclude=exclude)):
        if i % 2 == 0:
            conversations.append([*with_system_prompt(problem.messages, system_prompt),
                                  {"role": "assistant", "content": f"[{problem.reference}]"}])
        else:
            conversations.append(task.conversation(problem))
    return conversations


def teach_teacher(config: Config, task: AdditionTask, renderer: Renderer, service: ServiceClient,
                  held_out: set[str]) -> str | None:
    """SFT of the teacher (the sub-run ``teacher``); returns its final checkpoint."""
    conversations = teacher_warm_up_conversations(task, config.teacher_steps * config.teacher_batch_size,
                                                  config.system_prompt, seed=config.seed + 2, exclude=held_out)
    sft = sub_run(config, TrainConfig, "teacher", batch_size=config.teacher_batch_size,
                  max_steps=config.teacher_steps, learning_rate=config.teacher_learning_rate,
                  warmup_steps=min(10, config.teacher_steps // 10), grad_clip_norm=1.0,
                  load_checkpoint_path=config.start_path)
    data = conversations_to_data(conversations, renderer, "last_assistant_message")
    run_config = {**chz.asdict(sft), "system_prompt": config.system_prompt}
    return train(sft, data, run_config=run_config, service=service).final_state_path


def load_queries(config: Config) -> tuple[Task | None, list[list[Message]], list[list[Message]], list[Problem]]:
    """(task or None, training queries, held-out queries, held-out problems when there is a task)."""
    task = task_from_spec(config.queries)
    if task is not None:
        train_problems, test_problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
        return task, [p.messages for p in train_problems], [p.messages for p in test_problems], test_problems
    queries = [query_of(c) for c in load_conversations(DatasetSpec(source=config.queries))]
    train_queries, test_queries = split_train_test(queries, config.n_test, config.seed)
    return None, train_queries[: config.n_train], test_queries, []


def measure(sampler: SamplingClient, config: Config, renderer: Renderer, queries: Sequence[list[Message]],
            task: Task | None, problems: Sequence[Problem], *, system_prompt: str | None = None) -> dict[str, float]:
    """Greedy replies to ``queries``: ``follow_rate``, ``parse_ok`` and, with a task, ``correct`` (the
    answer, group 1 of ``follow_regex`` when the reply follows and the reply otherwise, graded)."""
    pattern = re.compile(config.follow_regex)
    completer = MessageCompleter(sampler, renderer, max_tokens=config.max_tokens)
    result = follow_rate(completer, queries, regex_check(config.follow_regex), system_prompt=system_prompt)
    metrics = result.metrics()
    if task is not None:
        def answer(text: str) -> str:
            match = pattern.fullmatch(text.strip())
            return match.group(1) if match and pattern.groups else text
        metrics["correct"] = sum(task.grade(p, answer(r.text)) if r.parsed else 0.0
                                 for p, r in zip(problems, result.replies)) / len(problems)
    return metrics


def main(config: Config) -> dict:
    started = time.monotonic()
    regex_check(config.follow_regex)  # a bad pattern fails before any work
    if config.samples_per_query > 1 and config.temperature == 0:
        raise ConfigError(f"samples_per_query={config.samples_per_query} with temperature=0 samples the same greedy "
                          "answer each time; set temperature > 0 (e.g. 1.0) or samples_per_query=1")
    renderer = renderer_for(config.base_model, config.renderer)
    task, train_queries, test_queries, test_problems = load_queries(config)
    service = make_service(config)

    teacher_path = config.teacher_path
    if teacher_path is None:
        if not isinstance(task, AdditionTask):
            raise ConfigError("without teacher_path a teacher is taught here, which only knows the addition task; "
                              "set teacher_path, or queries=addition")
        teacher_path = teach_teacher(config, task, renderer, service, {task.key(p) for p in test_problems})
    student_path = config.load_checkpoint_path or teacher_path
    config = chz.replace(config, load_checkpoint_path=student_path)
    teacher = sampling_client(service, config.base_model, teacher_path)
    start = sampling_client(service, config.base_model, student_path)

    def evaluate(sampler: SamplingClient, system_prompt: str | None = None) -> dict[str, float]:
        return measure(sampler, config, renderer, test_queries, task, test_problems, system_prompt=system_prompt)

    teacher_metrics = evaluate(teacher, config.system_prompt)
    before = evaluate(start)
    print(f"teacher with the system prompt: {teacher_metrics}; student without it, before: {before}")

    data = teacher_conversations(
        MessageCompleter(teacher, renderer, max_tokens=config.max_tokens, temperature=config.temperature),
        train_queries, config.system_prompt, samples_per_query=config.samples_per_query,
        keep=regex_check(config.follow_regex) if config.drop_unfollowed else None)
    print(f"teacher answers: {len(data.conversations)} kept of {data.n_samples} "
          f"({data.n_unparsed} did not parse, {data.n_rejected} did not follow)")
    if not data.conversations:
        raise DataError(f"none of the teacher's {data.n_samples} replies was kept ({data.n_unparsed} did not parse "
                        f"within max_tokens={config.max_tokens}, {data.n_rejected} did not follow); check the "
                        "teacher, or raise max_tokens")
    train_data = conversations_to_data(data.conversations, renderer, "last_assistant_message")
    result = train(config, train_data, eval_hooks={"follow": Hook(evaluate)}, service=service)
    after = {k.split("/", 1)[1]: v for k, v in result.metrics[-1].items() if k.startswith("follow/")}
    write_conversations(result.run_dir / "teacher_answers.jsonl", data.conversations)

    summary = result.write_summary({
        "follow_rate_before": before["follow_rate"], "follow_rate_after": after["follow_rate"],
        "teacher_follow_rate": teacher_metrics["follow_rate"],
        **({"correct_before": before["correct"], "correct_after": after["correct"],
            "teacher_correct": teacher_metrics["correct"]} if task is not None else {}),
        "parse_ok_after": after["parse_ok"], "n_test": len(test_queries), "n_queries": data.n_queries,
        "n_train_conversations": len(data.conversations), "n_unparsed": data.n_unparsed,
        "n_rejected": data.n_rejected, "system_prompt_chars": len(config.system_prompt),
        "teacher_path": teacher_path, "student_start": student_path}, started=started)
    print(f"held-out instruction following without the system prompt: {summary['follow_rate_before']:.1%} -> "
          f"{summary['follow_rate_after']:.1%} (teacher with it: {summary['teacher_follow_rate']:.1%}) after "
          f"{result.steps} steps in {summary['seconds']:.0f}s; run directory: {config.log_path}")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="distill"))
