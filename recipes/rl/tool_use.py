"""Tool use: the model answers arithmetic questions by calling a calculator tool.

    cookbook run rl/tool_use                       # SFT warm-up on tool transcripts, then RL

The question is a product of two numbers the model cannot multiply in its head. The calculator is
declared in the prompt (the renderer's tool format); the model calls it with a tool call, gets the
result as a ``tool`` message, and answers. Reward 1 for the right final answer, 0 otherwise (an
unparsable reply, a call to an unknown tool or a bad expression ends the episode). Random weights
know nothing of the format, so the recipe first teaches it by SFT on correct transcripts; greedy
episodes on held-out questions are measured before RL and at the end (``eval/correct``,
``eval/tool_call_ok``: the first reply was a parsed calculator call).
"""

from __future__ import annotations

import ast
import json
import operator
import random

import chz

from cookbook import seeds
from cookbook.completers import MessageCompleter, known_renderer, renderer_for
from cookbook.config import make_service
from cookbook.primitives import SamplingClient
from cookbook.recipe_cli import run_recipe
from cookbook.rl.message_env import MessageEnv, MessageStepResult, RenderedEnv, play
from cookbook.rl.train import RLConfig
from cookbook.rl.types import EnvGroupBuilder, RLDataset
from recipes.rl import rl_with_greedy_eval, sft_warm_up
from renderers import Message, Renderer, ToolSpec, text_content

CALCULATOR: ToolSpec = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def calculate(expression: str) -> str:
    """+ - * / and parentheses over numbers (nothing else is evaluated); raises ValueError."""
    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        raise ValueError(f"not arithmetic: {expression!r}")
    try:
        result = value(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ZeroDivisionError, RecursionError) as exc:
        raise ValueError(f"cannot evaluate {expression!r}: {exc}") from None
    return str(int(result)) if float(result).is_integer() else f"{result:.6g}"


def question(a: int, b: int) -> list[Message]:
    return [{"role": "user", "content": f"{a}*{b}"}]


def solved_transcript(a: int, b: int) -> list[Message]:
    call = {"id": "call_0", "type": "function",
            "function": {"name": "calculator", "arguments": json.dumps({"expression": f"{a}*{b}"})}}
    return [*question(a, b), {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": str(a * b), "tool_call_id": "call_0"},
            {"role": "assistant", "content": str(a * b)}]


class CalculatorEnv(MessageEnv):
    tools = [CALCULATOR]

    def __init__(self, a: int, b: int, max_calls: int = 2) -> None:
        self.a, self.b, self.max_calls, self.calls = a, b, max_calls, 0
        self.first_call_ok: bool | None = None

    def initial_messages(self) -> list[Message]:
        return question(self.a, self.b)

    def step(self, message: Message, parse_ok: bool) -> MessageStepResult:
        calls = message.get("tool_calls", [])
        if self.first_call_ok is None:
            self.first_call_ok = parse_ok and len(calls) == 1 and calls[0]["function"]["name"] == "calculator"
        if not parse_ok:
            return self._end(0.0, "unparsable reply")
        if not calls:
            answer = text_content(message).strip()
            return self._end(float(answer == str(self.a * self.b)), f"answer {answer!r}")
        self.calls += 1
        call = calls[0]
        try:
            if call["function"]["name"] != "calculator" or self.calls > self.max_calls:
                raise ValueError(f"call to {call['function']['name']!r} not allowed")
            result = calculate(json.loads(call["function"]["arguments"])["expression"])
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            return self._end(0.0, f"bad tool call: {exc}")
        reply = {"role": "tool", "content": result, "tool_call_id": call.get("id", "call_0")}
        return MessageStepResult(0.0, False, [reply])

    def _end(self, reward: float, log: str) -> MessageStepResult:
        metrics = {"correct": reward, "tool_call_ok": float(bool(self.first_call_ok)), "tool_calls": float(self.calls)}
        return MessageStepResult(reward, True, metrics=metrics, log=log)


def operands(rng: random.Random) -> tuple[int, int]:
    return rng.randint(10, 99), rng.randint(10, 99)


class CalculatorGroup(EnvGroupBuilder):
    def __init__(self, a: int, b: int, group_size: int, renderer: Renderer) -> None:
        self.a, self.b, self.group_size, self.renderer = a, b, group_size, renderer

    def make_envs(self) -> list[RenderedEnv]:
        return [RenderedEnv(CalculatorEnv(self.a, self.b), self.renderer) for _ in range(self.group_size)]

    def name(self) -> str:
        return "calculator"


class CalculatorDataset(RLDataset):
    def __init__(self, config: "Config", renderer: Renderer, n_batches: int) -> None:
        self.config, self.renderer, self.n_batches = config, renderer, n_batches

    def __len__(self) -> int:
        return self.n_batches

    def get_batch(self, index: int) -> list[CalculatorGroup]:
        rng = seeds.rng(self.config.seed, index)
        return [CalculatorGroup(*operands(rng), self.config.group_size, self.renderer)
                for _ in range(self.config.groups_per_batch)]


def greedy_episodes(sampler: SamplingClient, renderer: Renderer, config: "Config") -> dict[str, float]:
    """Held-out questions (seed + 1), greedy replies, every episode in step: correct and tool-call rates."""
    rng = random.Random(config.seed + 1)
    envs = [CalculatorEnv(*operands(rng)) for _ in range(config.n_eval)]
    completer = MessageCompleter(sampler, renderer, max_tokens=config.max_tokens, tools=[CALCULATOR])
    results = play(envs, completer, config.max_turns)
    return {key: sum(r.metrics[key] for r in results) / len(envs) for key in ("correct", "tool_call_ok")}


@chz.chz
class Config(RLConfig):
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    groups_per_batch: int = 8
    group_size: int = 4
    max_tokens: int = 96  # a calculator call is about 70 byte-level tokens
    max_turns: int = 4
    max_steps: int | None = 10
    n_eval: int = 50
    learning_rate: float = 1e-4
    grad_clip_norm: float = 1.0
    eval_every: int = 0
    warmup_steps_sft: int = 150
    warmup_learning_rate: float = 1e-3
    log_path: str = "runs/rl_tool_use"


def main(config: Config) -> dict:
    renderer = renderer_for(config.base_model, config.renderer)
    service = make_service(config)
    if config.warmup_steps_sft > 0 and not config.load_checkpoint_path:
        rng = random.Random(config.seed)
        transcripts = [solved_transcript(*operands(rng)) for _ in range(config.warmup_steps_sft * 16)]
        start = sft_warm_up(config, transcripts, renderer, service, steps=config.warmup_steps_sft,
                            learning_rate=config.warmup_learning_rate, batch_size=16, tools=[CALCULATOR])
        config = chz.replace(config, load_checkpoint_path=start)
    dataset = CalculatorDataset(config, renderer, config.max_steps or 10)
    return rl_with_greedy_eval(config, dataset, lambda sampler: greedy_episodes(sampler, renderer, config), service)


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="rl"))
