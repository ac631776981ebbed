"""Workload sizes: the issue's numbers, and the documented reductions for CPU and ``--quick``.

The full sizes run everywhere on a GPU and for ``tiny`` on CPU. On CPU the Qwen3 shapes (150k
vocabulary: every token costs a [hidden x 151936] matmul) get a smaller training batch, fewer new
tokens and no decode sweep, so that the whole default CPU run stays around ten minutes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Sizes:
    # training: a batch of sequences with lengths uniform in [train_min_len, train_max_len]
    train_seqs: int = 64
    train_min_len: int = 16
    train_max_len: int = 512
    # sampling: prompts x samples_per_prompt concurrent requests of new_tokens tokens each
    prompts: int = 8
    samples_per_prompt: int = 8
    prompt_min_len: int = 32
    prompt_max_len: int = 64
    new_tokens: int = 128
    # Time only the first N of the per-request generate calls: each is an independent batch-1
    # call, so tokens/s does not depend on N, and all 64 take minutes (CPU tiny, GPU 4B). 0: all.
    per_request_limit: int = 16
    decode_batches: tuple[int, ...] = (1, 8, 64)
    # long context: one sequence of this many tokens
    longctx_tokens: int = 4096
    # multi-LoRA: this many LoRA clients on one base (against as many separate peft models)
    lora_clients: int = 8

    def as_dict(self) -> dict:
        return asdict(self)


FULL = Sizes()  # the sizes: everything on CUDA, tiny on CPU
# Qwen3 shapes on CPU: same structure, scaled down.
CPU_LARGE = replace(FULL, train_seqs=8, train_max_len=256, new_tokens=16, per_request_limit=4, decode_batches=())
QUICK = Sizes(train_seqs=8, train_min_len=16, train_max_len=64, prompts=4, samples_per_prompt=4,
              prompt_min_len=8, prompt_max_len=16, new_tokens=16, per_request_limit=4, decode_batches=(1, 4),
              longctx_tokens=256, lora_clients=3)


def sizes_for(model_name: str, device_type: str, quick: bool, overrides: dict) -> Sizes:
    """The sizes one model runs with, after command-line overrides (``None`` values ignored)."""
    if quick:
        base = QUICK
    else:
        base = CPU_LARGE if device_type == "cpu" and model_name != "tiny" else FULL
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
