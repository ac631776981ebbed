"""RLHF on addition for the tiny model: SFT -> a Bradley-Terry reward model -> RL against the reward model.

    cookbook run rl/rlhf                                                # all three stages
    cookbook run rl/rlhf load_checkpoint_path=local://.../step_000300   # from an SFT checkpoint (no SFT stage)
    cookbook run rl/rlhf rm_kind=judge rm_max_steps=400                 # a judge reward model instead

1. SFT (``<log_path>/sft``; skipped with ``load_checkpoint_path``): ``sft_steps`` steps of the
   addition chat task, so the policy answers in the right format and is right some of the time.
2. Reward model (``<log_path>/reward_model``): a LoRA adapter trained from the SFT weights with the
   Bradley-Terry loss on synthetic comparisons (``cookbook.preference.data.addition_comparisons``:
   the correct sum chosen over the sum plus or minus an error in ``[rm_min_error, rm_max_error]``,
   near misses by default, as the policy's own mistakes are). The score (``rm_kind``,
   ``cookbook.preference.reward_model``) is the log-probability of the reply under the reward
   model (``likelihood``, default) or of the verdict ``rm_verdict`` after the question
   ``rm_question`` (``judge``). Trained by the DPO loop with ``reference_free=True``, ``beta=1``.
3. RL (``<log_path>/rl``): the policy, from the SFT weights, with the reward model's score as the
   reward (``cookbook.rl.reward_env``: every episode's score is awaited inside the rollouts; a reply
   that does not parse gets ``format_reward``). The true grade is logged beside it (``env/correct``)
   and never used as reward.

Measured before and after, on problems held out of every stage (``<log_path>/summary.json``): the
reward model's pairwise accuracy on held-out comparisons (``rm_before`` / ``rm_after``:
``accuracy``) and on the start policy's own wrong answers against the right one (``on_policy_accuracy``,
``rm_policy_samples`` samples per problem); the policy's greedy replies: mean reward-model score
(``reward``) and true accuracy (``accuracy``, the ``AdditionTask`` grade) (``policy_before`` /
``policy_after``, also logged as ``eval/...`` every ``eval_every`` RL steps). Each stage is its own
run directory, so a rerun with the same ``log_path`` reuses finished stages and resumes the rest.

Measured on 2 CPU cores shared with another job. ``cookbook run rl/rlhf`` (defaults: 250 SFT steps;
a ``likelihood`` reward model, 200 steps of 32 comparisons with errors 1-10, lr 3e-4; 100 RL steps
of 32 problems x 8 samples, lr 1e-4): reward model 86.0% -> 98.5% on held-out comparisons and
58.7% -> 96.2% on the SFT policy's own mistakes (661 pairs); RL raised the greedy replies' mean
reward from -2.57 to -1.19 and their true accuracy from 30.5% to 68.5% (sampled episodes: 15% ->
47% correct); 8 min 55 s for the whole command. From a quickstart checkpoint at step 300
(``load_checkpoint_path``): reward model 90.0% -> 97.5% and 66.0% -> 94.6% (612 pairs); greedy
reward -2.49 -> -1.41, true accuracy 45.0% -> 65.0% (sampled: 19% -> 54%), 7 min 39 s; RL on the
true reward (``rl/addition``) reaches 74% from that checkpoint in as many steps.

The ``judge`` score (measured with the question ``Correct?``) does not learn near misses on tiny
from the step-300 checkpoint: held-out accuracy stays at 51-55% after 60-200 steps (at lr 1e-3 its
scores collapse to a constant); from the fully trained quickstart checkpoint it reaches 68.5% in
100 steps. A 4-layer model checking a sum at one position learns slowly; the judge is for models
that can already answer such a question (``rm_verdict=Yes`` with a BPE tokenizer where it is one
token; a verdict of more tokens is a ``ConfigError``).
"""

from __future__ import annotations

import time

import chz

from cookbook import seeds
from cookbook.completers import MessageCompleter, known_renderer, renderer_for, sampling_client
from cookbook.config import make_service
from cookbook.preference.data import addition_comparisons
from cookbook.preference.reward_model import (
    RewardModel,
    ScoreFormat,
    ScoreKind,
    bradley_terry_config,
    comparisons_to_score_pairs,
    pairwise_accuracy,
)
from cookbook.preference.train import DPOConfig, Pair
from cookbook.preference.train import train as train_reward_model
from cookbook.preference.types import Comparison
from cookbook.primitives import SamplingClient, ServiceClient
from cookbook.recipe_cli import run_recipe
from cookbook.rl.reward_env import RewardRLDataset, reward_hook
from cookbook.rl.train import RLConfig, train
from cookbook.run import sub_run, sub_run_path, write_summary
from cookbook.supervised.data import conversations_to_data
from cookbook.supervised.train import TrainConfig
from cookbook.supervised.train import train as sft_train
from cookbook.tasks import AdditionTask, Problem
from renderers import Renderer


@chz.chz
class Config(RLConfig):
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    digits: int = 2
    n_train: int = 8000  # RL problems (the SFT data and the comparisons are other draws, also without held-out ones)
    n_test: int = 200  # held-out problems: greedy evals of the policy and the reward model's test comparisons
    # 1. SFT (when load_checkpoint_path is unset)
    sft_steps: int = 250  # at a constant sft_learning_rate (a decay to 0 over so few steps learns far less)
    sft_batch_size: int = 64
    sft_learning_rate: float = 1e-3
    # 2. the reward model
    rm_comparisons: int = 6400
    rm_min_error: int = 1
    rm_max_error: int = 10
    rm_kind: ScoreKind = "likelihood"  # or "judge": log p(rm_verdict) after rm_question
    rm_question: str = "Is the last reply correct?"
    rm_verdict: str = "Y"  # one token: the tiny tokenizer is byte-level
    rm_batch_size: int = 32
    rm_learning_rate: float = 3e-4
    rm_max_steps: int | None = 200
    rm_policy_samples: int = 4  # answers sampled per held-out problem to test the reward model on the policy's mistakes
    # 3. RL against the reward model
    format_reward: float = -10.0  # a reply that does not parse; below the reward model's scores (log-probabilities)
    groups_per_batch: int = 32
    group_size: int = 8
    max_tokens: int = 6
    learning_rate: float = 1e-4
    grad_clip_norm: float = 1.0
    max_steps: int | None = 100
    eval_every: int = 25
    log_path: str = "runs/rlhf_addition"


def sft_stage(config: Config, task: AdditionTask, held_out: set[str], renderer: Renderer,
              service: ServiceClient) -> str | None:
    conversations = task.conversations(config.sft_steps * config.sft_batch_size, seed=config.seed + 2,
                                       exclude=held_out)
    sft = sub_run(config, TrainConfig, "sft", nested=True, batch_size=config.sft_batch_size,
                  max_steps=config.sft_steps, learning_rate=config.sft_learning_rate, lr_schedule="constant",
                  warmup_steps=min(20, config.sft_steps // 10), grad_clip_norm=1.0)
    data = conversations_to_data(conversations, renderer, "last_assistant_message")
    return sft_train(sft, data, service=service).final_state_path


def reward_model_stage(config: Config, start: str | None, train_pairs: list[Pair],
                       service: ServiceClient) -> str | None:
    rm = bradley_terry_config(sub_run(
        config, DPOConfig, "reward_model", nested=True, load_checkpoint_path=start, batch_size=config.rm_batch_size,
        learning_rate=config.rm_learning_rate, max_steps=config.rm_max_steps, grad_clip_norm=1.0, warmup_steps=10))
    return train_reward_model(rm, train_pairs, service=service).final_sampler_path


def policy_error_comparisons(sampler: SamplingClient, problems: list[Problem], renderer: Renderer,
                             task: AdditionTask, config: Config) -> list[Comparison]:
    """The reference chosen over each wrong answer among ``rm_policy_samples`` the policy samples per problem
    (temperature 1): how well the reward model ranks the mistakes RL will meet."""
    completer = MessageCompleter(sampler, renderer, max_tokens=config.max_tokens, temperature=1.0)
    replies = completer.complete_many([p.messages for p in problems], config.rm_policy_samples,
                                      seeds=[seeds.derived_seed(config.seed, i) for i in range(len(problems))])
    out = []
    for i, reply in enumerate(replies):
        problem = problems[i // config.rm_policy_samples]
        if reply.parsed and task.grade(problem, reply.text) < 1.0:
            out.append(Comparison(problem.messages, [{"role": "assistant", "content": problem.reference}],
                                  [reply.message]))
    return out


def main(config: Config) -> dict:
    started = time.monotonic()
    renderer = renderer_for(config.base_model, config.renderer)
    task = AdditionTask(digits=config.digits)
    train_problems, test_problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
    held_out = {task.key(p) for p in test_problems}
    service = make_service(config)
    fmt = ScoreFormat(config.rm_kind, config.rm_question, config.rm_verdict)

    start = config.load_checkpoint_path or sft_stage(config, task, held_out, renderer, service)
    start_sampler = sampling_client(service, config.base_model, start)

    comparisons = dict(digits=config.digits, min_error=config.rm_min_error, max_error=config.rm_max_error)
    rm_train = comparisons_to_score_pairs(addition_comparisons(config.rm_comparisons, seed=config.seed + 3,
                                                               exclude=held_out, **comparisons), renderer, fmt)
    # seed + 1 draws the held-out problems again (held_out_split), each with a wrong answer
    rm_test = comparisons_to_score_pairs(addition_comparisons(config.n_test, seed=config.seed + 1, **comparisons),
                                         renderer, fmt)
    mistakes = policy_error_comparisons(start_sampler, test_problems, renderer, task, config)
    on_policy = comparisons_to_score_pairs(mistakes, renderer, fmt)

    def measure(sampler: SamplingClient) -> dict[str, float]:
        return {**pairwise_accuracy(sampler, rm_test), "on_policy_pairs": len(on_policy),
                **{f"on_policy_{k}": v for k, v in pairwise_accuracy(sampler, on_policy).items()}}
    rm_before = measure(start_sampler)
    rm_path = reward_model_stage(config, start, rm_train, service)
    rm_sampler = sampling_client(service, config.base_model, rm_path)
    rm_after = measure(rm_sampler)
    print(f"reward model pairwise accuracy, held-out comparisons: {rm_before['accuracy']:.1%} -> "
          f"{rm_after['accuracy']:.1%}; the policy's own wrong answers: {rm_before.get('on_policy_accuracy', 0):.1%} "
          f"-> {rm_after.get('on_policy_accuracy', 0):.1%} ({len(on_policy)} pairs)")

    reward_model = RewardModel(rm_sampler, renderer, fmt)
    dataset = RewardRLDataset(train_problems, renderer, reward_model, groups_per_batch=config.groups_per_batch,
                              group_size=config.group_size, format_reward=config.format_reward, task=task,
                              seed=config.seed)
    evaluate = reward_hook(reward_model, test_problems, renderer, max_tokens=config.max_tokens,
                           format_reward=config.format_reward, task=task)
    policy_before = dict(evaluate(start_sampler))
    print(f"policy before RL (greedy, held out): {_show(policy_before)}")
    rl = chz.replace(config, load_checkpoint_path=start, log_path=sub_run_path(config.log_path, "rl", nested=True))
    result = train(rl, dataset, eval_hooks={"eval": evaluate}, service=service)
    policy_after = {k.split("/", 1)[1]: v for k, v in result.metrics[-1].items() if k.startswith("eval/")}
    print(f"policy after {result.steps} RL steps (greedy, held out): {_show(policy_after)}")

    return write_summary(config.log_path, {
        "rm_before": rm_before, "rm_after": rm_after, "policy_before": policy_before, "policy_after": policy_after,
        "rl_steps": result.steps, "start_checkpoint": start, "reward_model": rm_path,
        "checkpoint": result.final_state_path, "seconds": round(time.monotonic() - started, 1),
        "log_path": config.log_path})


def _show(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()))


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="rl"))
