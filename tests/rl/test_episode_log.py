"""The episode log: ``episodes.txt`` to read, ``episodes.jsonl`` (per step: groups, episodes, turns, tokens,
rewards and the advantages the loop trains on) for ``cookbook view``."""

from __future__ import annotations

import json

import pytest
from tinker import types

from cookbook.rl.episode_log import EpisodeLog
from cookbook.rl.types import EnvGroupBuilder, Trajectory, TrajectoryGroup, Transition


class Letters:
    """A tokenizer whose token i is the letter chr(ord('a') + i)."""

    def decode(self, tokens, skip_special_tokens=False):
        return "".join(chr(ord("a") + t) for t in tokens)


class Named(EnvGroupBuilder):
    def make_envs(self):
        return []

    def name(self):
        return "letters"


def turn(observation, action, reward, done=True, **metrics):
    return Transition(types.ModelInput.from_ints(observation), action, [-0.5] * len(action), "stop", reward, done,
                      metrics=metrics, log=f"r={reward}")


def groups():
    two_turns = Trajectory([turn([0, 1], [2], 0.0, done=False, ok=0.0), turn([0, 1, 2, 3], [4, 5], 3.0, ok=1.0)])
    mixed = TrajectoryGroup(Named(), [Trajectory([turn([0, 1], [7], 1.0)]), two_turns], [1.0, 3.0])
    constant = TrajectoryGroup(Named(), [Trajectory([turn([9], [8], 1.0)])] * 2, [1.0, 1.0])
    return [mixed, constant]


def test_jsonl_holds_each_episode_with_its_tokens_reward_and_advantage(tmp_path):
    log = EpisodeLog(tmp_path / "episodes.txt", Letters(), groups_per_step=2)
    log.write(3, groups())
    log.write(4, groups()[:1])
    records = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 4]
    mixed, constant = records[0]["groups"]
    assert (mixed["name"], mixed["trained"], constant["trained"]) == ("letters", True, False)
    assert [e["reward"] for e in mixed["episodes"]] == [1.0, 3.0]
    assert [e["advantage"] for e in mixed["episodes"]] == [-1.0, 1.0]  # reward minus the group's mean
    assert [e["advantage"] for e in constant["episodes"]] == [0.0, 0.0]
    first, second = mixed["episodes"][1]["turns"]
    assert (first["prompt"], first["reply"], first["tokens"], first["logprobs"]) == ("ab", "c", ["c"], [-0.5])
    assert (second["prompt"], second["reply"], second["tokens"]) == ("d", "ef", ["e", "f"])  # only the new prompt part
    assert (second["reward"], second["log"], second["metrics"], second["stop_reason"]) == (3.0, "r=3.0", {"ok": 1.0},
                                                                                         "stop")
    assert mixed["episodes"][1]["metrics"] == {"ok": 0.5}  # the env's metrics averaged over turns
    text = (tmp_path / "episodes.txt").read_text()
    assert "=== step 3 ===" in text and "  prompt: 'd'" in text and "reply:  'ef' -> reward 3.000 (r=3.0)" in text


def test_normalised_advantages_divide_by_the_groups_std(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"normalize_advantages": True}))
    group = TrajectoryGroup(Named(), [Trajectory([turn([0], [1], r)]) for r in (0.0, 0.0, 4.0)], [0.0, 0.0, 4.0])
    EpisodeLog(tmp_path / "episodes.txt", Letters(), 1).write(0, [group])
    [record] = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    advantages = [e["advantage"] for e in record["groups"][0]["episodes"]]
    std = (sum((r - 4 / 3) ** 2 for r in (0, 0, 4)) / 3) ** 0.5
    assert advantages == pytest.approx([-4 / 3 / std, -4 / 3 / std, 8 / 3 / std], rel=1e-5)


def test_only_the_first_groups_are_logged_and_zero_logs_nothing(tmp_path):
    EpisodeLog(tmp_path / "episodes.txt", Letters(), 1).write(0, groups())
    [record] = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(record["groups"]) == 1
    EpisodeLog(tmp_path / "off.txt", Letters(), 0).write(0, groups())
    assert not (tmp_path / "off.txt").exists()
