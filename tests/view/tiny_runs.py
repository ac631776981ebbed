"""Tiny real run directories for the viewer's tests, built once per session (``build(root)``).

- ``sft``: ``sl/chat_sft`` on addition, 4 steps (checkpoints after steps 2 and 4; test NLL and the
  ``addition`` benchmark as an eval hook on 4 problems after steps 2 and 4);
- ``rl``: the RL loop for 3 steps on a chat env whose reward is the parity of the reply's length (so
  groups have different rewards), an odd first reply that parsed retried, all groups logged;
- ``dpo``: ``dpo/chat_dpo`` on addition comparisons, 2 steps;
- ``eval``: ``cookbook eval`` of the SFT run's final checkpoint on 8 addition problems;
- ``sweep``: the SFT run's checkpoints x addition on 6 problems.

``python tests/view/tiny_runs.py DIR`` builds them into DIR (to look at with ``cookbook view DIR``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cookbook.rl.message_env import MessageEnv, MessageStepResult, RenderedEnv
from cookbook.rl.types import EnvGroupBuilder, RLDataset
from renderers import Renderer, text_content


class Parity(MessageEnv):
    """Reward 1 when the reply has an even number of characters; an odd first reply that parsed gets one retry."""

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b, self.turn = a, b, 0

    def initial_messages(self):
        return [{"role": "user", "content": f"{self.a}+{self.b}"}]

    def step(self, message, parse_ok):
        self.turn += 1
        even = float(len(text_content(message)) % 2 == 0)
        if not even and parse_ok and self.turn == 1:
            return MessageStepResult(0.0, False, [{"role": "user", "content": "again"}], metrics={"even": even})
        return MessageStepResult(even, True, metrics={"even": even, "parse_ok": float(parse_ok)},
                                 log=f"{len(text_content(message))} characters")


class ParityGroup(EnvGroupBuilder):
    def __init__(self, renderer: Renderer, a: int, b: int, size: int) -> None:
        self.renderer, self.a, self.b, self.size = renderer, a, b, size

    def make_envs(self):
        return [RenderedEnv(Parity(self.a, self.b), self.renderer) for _ in range(self.size)]

    def name(self) -> str:
        return "parity"


class ParityDataset(RLDataset):
    def __init__(self, renderer: Renderer, steps: int, groups: int, size: int) -> None:
        self.renderer, self.steps, self.groups, self.size = renderer, steps, groups, size

    def __len__(self) -> int:
        return self.steps

    def get_batch(self, index: int):
        return [ParityGroup(self.renderer, 10 + index, 20 + g, self.size) for g in range(self.groups)]


def build(root: Path) -> dict[str, Path]:
    """The five run directories under ``root`` (see the module docstring); returns name -> path."""
    from cookbook.rl.train import RLConfig
    from cookbook.rl.train import train as rl_train
    from cookbook.tokenizer_utils import get_tokenizer
    from evals import run as eval_run
    from evals import sweeps
    from evals.hooks import EvalHooksConfig
    from recipes.dpo import chat_dpo
    from recipes.sl import chat_sft
    from renderers import get_renderer

    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / name for name in ("sft", "rl", "dpo", "eval", "sweep")}
    common = dict(progress=False, lora_rank=4)
    sft = chat_sft.main(chat_sft.Config(
        data=chat_sft.DataConfig(source="addition", max_examples=64, test_size=8), batch_size=8, max_steps=4,
        eval_every=2, save_every=2, learning_rate=1e-3, evals=EvalHooksConfig(benchmarks="addition", limit=4),
        log_path=str(paths["sft"]), **common))
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    rl_train(RLConfig(max_tokens=6, max_turns=2, log_groups=2, max_steps=3, log_path=str(paths["rl"]), **common),
             ParityDataset(renderer, steps=3, groups=2, size=4))
    chat_dpo.main(chat_dpo.Config(data=chat_dpo.DataConfig(source="addition", test_size=4), batch_size=4,
                                  max_steps=2, log_path=str(paths["dpo"]), **common))
    eval_run.main(eval_run.EvalConfig(benchmark="addition", checkpoint=sft.final_sampler_path, limit=8,
                                      output_dir=str(paths["eval"]), progress=False))
    sweeps.sweep(sweeps.SweepConfig(runs=str(paths["sft"]), benchmarks="addition", limit=6,
                                    output_dir=str(paths["sweep"]), progress=False))
    return paths


if __name__ == "__main__":
    for name, path in build(Path(sys.argv[1])).items():
        print(name, path)
