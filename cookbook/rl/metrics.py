"""What the RL loop logs about a batch of episodes, and about the trainer's view of them.

- ``reward/mean``, ``reward/std``: over episodes (final reward incl. group rewards);
- ``env/<key>``: the mean of each metric the envs reported, over all steps of all episodes;
- ``groups/frac_mixed``, ``groups/frac_all_good``, ``groups/frac_all_bad``: groups whose rewards
  differ / are all equal and > 0 / are all equal and <= 0 (only mixed groups carry advantages);
- ``rollouts/dropped_groups``, ``episodes/turns``, ``episodes/truncated`` (last turn hit max_tokens);
- ``tokens/sampled`` and ``sampler/entropy``: the mean of -log p over sampled tokens, an unbiased
  estimate of the per-token entropy of the sampling distribution;
- ``sampler/logprob_diff_mean`` and ``_max``: |trainer logprob - sampler logprob| over the sampled
  tokens, the trainer scoring with the weights that sampled (off-policy: includes the lag).

May import ``cookbook.rl.types`` and ``cookbook.rl.data``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from cookbook.rl.data import Sequence as RLSequence
from cookbook.rl.data import is_constant
from cookbook.rl.types import TrajectoryGroup


def rollout_metrics(groups: Sequence[TrajectoryGroup], dropped: int) -> dict[str, float]:
    rewards = np.asarray([r for g in groups for r in g.rewards], dtype=np.float64)
    trajectories = [t for g in groups for t in g.trajectories]
    transitions = [x for t in trajectories for x in t.transitions]
    sampled = np.asarray([lp for x in transitions for lp in x.logprobs], dtype=np.float64)
    n_groups = max(len(groups), 1)
    row = {
        "reward/mean": float(rewards.mean()) if rewards.size else float("nan"),
        "reward/std": float(rewards.std()) if rewards.size else float("nan"),
        "groups/frac_mixed": sum(not is_constant(g) for g in groups) / n_groups,
        "groups/frac_all_good": sum(is_constant(g) and g.rewards[0] > 0 for g in groups) / n_groups,
        "groups/frac_all_bad": sum(is_constant(g) and g.rewards[0] <= 0 for g in groups) / n_groups,
        "rollouts/dropped_groups": float(dropped),
        "episodes/turns": len(transitions) / max(len(trajectories), 1),
        "episodes/truncated": sum(t.transitions[-1].stop_reason == "length" for t in trajectories if t.transitions)
        / max(len(trajectories), 1),
        "tokens/sampled": float(sampled.size),
        "sampler/entropy": float(-sampled.mean()) if sampled.size else float("nan"),
    }
    by_key: dict[str, list[float]] = defaultdict(list)
    for x in transitions:
        for key, value in x.metrics.items():
            by_key[key].append(float(value))
    row.update({f"env/{k}": float(np.mean(v)) for k, v in sorted(by_key.items())})
    return row


def logprob_diff(sequences: Sequence[RLSequence], trainer_logprobs: Sequence[np.ndarray]) -> dict[str, float]:
    diffs = [np.abs(np.asarray(lp, dtype=np.float64) - s.target_logprobs())[s.target_mask() > 0]
             for s, lp in zip(sequences, trainer_logprobs)]
    flat = np.concatenate(diffs) if diffs else np.zeros(0)
    if not flat.size:
        return {}
    return {"sampler/logprob_diff_mean": float(flat.mean()), "sampler/logprob_diff_max": float(flat.max())}
