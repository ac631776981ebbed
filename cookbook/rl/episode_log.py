"""A readable log of sampled episodes: ``episodes.txt`` in the run directory.

For the first ``groups_per_step`` groups of every step: each episode's turns (the new part of the
prompt and the sampled reply, decoded), per-turn rewards and env notes, and the episode's reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cookbook.rl.types import TrajectoryGroup


class EpisodeLog:
    def __init__(self, path: Path, tokenizer: Any, groups_per_step: int) -> None:
        self.path, self.tokenizer, self.groups_per_step = path, tokenizer, groups_per_step

    def write(self, step: int, groups: Sequence[TrajectoryGroup]) -> None:
        if self.groups_per_step <= 0 or not groups:
            return
        lines = [f"=== step {step} ==="]
        for g, group in enumerate(groups[: self.groups_per_step]):
            lines.append(f"--- group {g} ({group.builder.name()}) ---")
            for e, (trajectory, reward) in enumerate(zip(group.trajectories, group.rewards)):
                lines.append(f"[episode {e}] reward {reward:.3f}")
                seen: list[int] = []
                for t in trajectory.transitions:
                    prompt = t.observation.to_ints()
                    new = prompt[len(seen):] if prompt[: len(seen)] == seen else prompt
                    lines.append(f"  prompt: {self._text(new)!r}")
                    note = f" ({t.log})" if t.log else ""
                    lines.append(f"  reply:  {self._text(t.action)!r} -> reward {t.reward:.3f}{note}")
                    seen = prompt + list(t.action)
        with open(self.path, "a") as f:
            f.write("\n".join(lines) + "\n")

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=False)
