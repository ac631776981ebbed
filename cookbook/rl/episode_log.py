"""The log of sampled episodes: ``episodes.txt`` (to read) and ``episodes.jsonl`` (for ``cookbook view``).

For the first ``groups_per_step`` groups of every step:

- ``episodes.txt``: each episode's turns (the new part of the prompt and the sampled reply,
  decoded), per-turn rewards and env notes, and the episode's reward;
- ``episodes.jsonl``: one JSON object per step, ``{"step", "groups": [...]}``. A group holds its
  ``name``, ``trained`` (false when the loop drops it for having all rewards equal) and its
  ``episodes``; an episode its ``reward`` (final, group reward included), ``advantage`` (the
  advantage the loop trains on: the run's ``advantage_estimator`` over the step's trained groups,
  after any overlong penalty; 0 in a group the loop drops; a KL penalty, if any, is applied later
  per token and is not included; on-policy distillation, which shares this log, trains on the per-token reverse KL
  instead, plus ``reward_coef`` times this), ``metrics`` (the env's, averaged over turns) and
  ``turns``. A turn holds ``prompt`` (the new part of the prompt, decoded), ``reply``, ``reward``,
  ``log``, ``metrics``, ``stop_reason``, and the reply's ``tokens`` (each token decoded on its own)
  with the sampler's ``logprobs``.

A resumed run writes the steps it runs again a second time; readers keep the last record of a step.
The run settings the advantages depend on are read from the run directory's ``config.json`` (written
before the loop starts), so the loops pass nothing but the path (a run from before
``advantage_estimator`` existed has ``normalize_advantages``: true means ``group_std``).

May import ``cookbook.rl.types`` and ``cookbook.rl.data``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cookbook.rl.data import AdvantageEstimator, batch_advantages, is_constant, with_overlong_penalty
from cookbook.rl.types import Trajectory, TrajectoryGroup

JSONL_NAME = "episodes.jsonl"


class EpisodeLog:
    def __init__(self, path: Path, tokenizer: Any, groups_per_step: int) -> None:
        self.path, self.tokenizer, self.groups_per_step = Path(path), tokenizer, groups_per_step
        self.jsonl_path = self.path.with_name(JSONL_NAME)
        settings = _run_config(self.path.parent)
        self.estimator: AdvantageEstimator = settings.get("advantage_estimator") or (
            "group_std" if settings.get("normalize_advantages") else "group_mean")
        self.remove_constant = bool(settings.get("remove_constant_reward_groups", True))
        max_tokens = int(settings.get("max_tokens") or 0)
        self.overlong = (max_tokens, float(settings.get("overlong_buffer") or 0) * max_tokens,
                         float(settings.get("overlong_penalty", 1.0)))

    def write(self, step: int, groups: Sequence[TrajectoryGroup]) -> None:
        if self.groups_per_step <= 0 or not groups:
            return
        shown = groups[: self.groups_per_step]
        with open(self.path, "a") as f:
            f.write("\n".join(self._text_lines(step, shown)) + "\n")
        advantages, trained = self._advantages(groups)
        record = {"step": step, "groups": [self._group_record(g, group, advantages[g], trained[g])
                                           for g, group in enumerate(shown)]}
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(record, default=_finite) + "\n")

    def _text_lines(self, step: int, groups: Sequence[TrajectoryGroup]) -> list[str]:
        lines = [f"=== step {step} ==="]
        for g, group in enumerate(groups):
            lines.append(f"--- group {g} ({group.builder.name()}) ---")
            for e, (trajectory, reward) in enumerate(zip(group.trajectories, group.rewards)):
                lines.append(f"[episode {e}] reward {reward:.3f}")
                for t, new_prompt in zip(trajectory.transitions, _new_prompts(trajectory)):
                    lines.append(f"  prompt: {self._text(new_prompt)!r}")
                    note = f" ({t.log})" if t.log else ""
                    lines.append(f"  reply:  {self._text(t.action)!r} -> reward {t.reward:.3f}{note}")
        return lines

    def _advantages(self, groups: Sequence[TrajectoryGroup]) -> tuple[list[list[float]], list[bool]]:
        """Each group's advantages as the loop computes them (0 in a group it drops), and whether it trains."""
        adjusted = with_overlong_penalty(groups, *self.overlong)
        trained = [not (self.remove_constant and is_constant(g)) for g in adjusted]
        computed = iter(batch_advantages([g.rewards for g, t in zip(adjusted, trained) if t], self.estimator))
        return [next(computed) if t else [0.0] * len(g.rewards) for g, t in zip(adjusted, trained)], trained

    def _group_record(self, index: int, group: TrajectoryGroup, advantages: list[float],
                      trained: bool) -> dict[str, Any]:
        episodes = []
        for trajectory, reward, advantage in zip(group.trajectories, group.rewards, advantages):
            turns = [{"prompt": self._text(new_prompt), "reply": self._text(t.action), "reward": t.reward,
                      "log": t.log, "metrics": dict(t.metrics), "stop_reason": t.stop_reason,
                      "tokens": [self._text([token]) for token in t.action], "logprobs": list(t.logprobs)}
                     for t, new_prompt in zip(trajectory.transitions, _new_prompts(trajectory))]
            episodes.append({"reward": reward, "advantage": advantage, "metrics": _mean_metrics(trajectory),
                             "turns": turns})
        return {"group": index, "name": group.builder.name(), "trained": trained, "episodes": episodes}

    def _text(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=False)


def _new_prompts(trajectory: Trajectory) -> list[list[int]]:
    """Each turn's prompt minus what the previous turns already showed (the whole prompt when it
    does not extend them)."""
    seen: list[int] = []
    out = []
    for t in trajectory.transitions:
        prompt = t.observation.to_ints()
        out.append(prompt[len(seen):] if prompt[: len(seen)] == seen else prompt)
        seen = prompt + list(t.action)
    return out


def _mean_metrics(trajectory: Trajectory) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for t in trajectory.transitions:
        for key, value in t.metrics.items():
            sums.setdefault(key, []).append(float(value))
    return {key: sum(values) / len(values) for key, values in sums.items()}


def _run_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _finite(value: Any) -> Any:
    """JSON for what ``json`` cannot write as is (numpy scalars)."""
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return str(value)
