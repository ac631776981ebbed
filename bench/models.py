"""Bench models: Hugging Face directories with random weights, built locally from configs.

``tiny`` is the backend's embedded model. The Qwen3 shapes copy the architecture fields of the
public Qwen3-0.6B / Qwen3-4B configs (nothing is downloaded); ``long-context`` is a small body
with a 150k vocabulary for the memory workload. Every directory is written once with
``save_pretrained`` (weights from a fixed seed, plus the tiny byte-level tokenizer: only token
ids matter here) under ``$COOKBOOK_CACHE/bench-models`` and reused by later runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from cookbook.tiny import build_tiny_tokenizer, default_cache_dir, tiny_model_dir

_FORMAT_VERSION = "1"  # bump when the build below changes
_SEED = 0

# Fields shared by every bench shape (Qwen3 defaults).
_COMMON = dict(
    architectures=["Qwen3ForCausalLM"],
    rms_norm_eps=1e-6,
    hidden_act="silu",
    attention_bias=False,
    initializer_range=0.02,
)

SHAPES: dict[str, dict] = {
    # Qwen/Qwen3-0.6B config.json (architecture fields only)
    "qwen3-0.6b": dict(
        hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
        max_position_embeddings=40960, rope_theta=1_000_000.0,
    ),
    # Qwen/Qwen3-4B config.json (architecture fields only)
    "qwen3-4b": dict(
        hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
        max_position_embeddings=40960, rope_theta=1_000_000.0,
    ),
    # the long-context memory workload: the cost is in the [tokens x vocab] logits, not the body
    "long-context": dict(
        hidden_size=256, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, vocab_size=150000, tie_word_embeddings=False,
        max_position_embeddings=8192, rope_theta=1_000_000.0,
    ),
}
MODEL_NAMES = ("tiny", *SHAPES)
# Shapes that get fewer layers by default on CPU (full depth is far too slow on a few cores).
DEEP_SHAPES = ("qwen3-0.6b", "qwen3-4b")


@dataclass(frozen=True)
class BenchModel:
    """A built model directory and the shape facts the reports need."""

    name: str
    path: Path
    layers: int
    full_layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def label(self) -> str:
        depth = f"L{self.layers}" if self.layers == self.full_layers else f"L{self.layers}/{self.full_layers}"
        return f"{self.name} ({depth}, h{self.hidden}, V{self.vocab})"

    @property
    def linear_params(self) -> int:
        """Weights of every matmul (decoder linears + lm_head); embeddings lookups excluded."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = self.hidden * (2 * q + 2 * kv) + 3 * self.hidden * self.intermediate
        return self.layers * per_layer + self.vocab * self.hidden

    def lora_params(self, rank: int) -> int:
        """Trainable parameters of a rank-``rank`` LoRA on attention, MLP and lm_head."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        shapes = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]
        per_layer = sum(rank * (a + b) for a, b in shapes)
        return self.layers * per_layer + rank * (self.hidden + self.vocab)

    def as_dict(self) -> dict:
        return dict(name=self.name, label=self.label, path=str(self.path), layers=self.layers,
                    full_layers=self.full_layers, hidden=self.hidden, intermediate=self.intermediate,
                    heads=self.heads, kv_heads=self.kv_heads, head_dim=self.head_dim, vocab=self.vocab,
                    tied=self.tied, linear_params=self.linear_params, lora_params_r32=self.lora_params(32))


def bench_cache_dir() -> Path:
    return default_cache_dir() / "bench-models"


def get_model(name: str, layers: int | None = None) -> BenchModel:
    """The bench model ``name`` (built on first use); ``layers`` shrinks the depth of a shape."""
    if name == "tiny":
        path = tiny_model_dir()
        return _describe(name, path, json.loads((path / "config.json").read_text()), full_layers=None)
    if name not in SHAPES:
        raise ValueError(f"unknown bench model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    fields = dict(_COMMON, **SHAPES[name])
    full = fields["num_hidden_layers"]
    if layers is not None:
        if not 1 <= layers <= full:
            raise ValueError(f"{name} has {full} layers; --layers must be in [1, {full}]")
        fields["num_hidden_layers"] = layers
    path = _build_dir(name, fields)
    return _describe(name, path, json.loads((path / "config.json").read_text()), full_layers=full)


def _describe(name: str, path: Path, cfg: dict, full_layers: int | None) -> BenchModel:
    heads = cfg["num_attention_heads"]
    return BenchModel(
        name=name, path=path, layers=cfg["num_hidden_layers"], full_layers=full_layers or cfg["num_hidden_layers"],
        hidden=cfg["hidden_size"], intermediate=cfg["intermediate_size"], heads=heads,
        kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads, vocab=cfg["vocab_size"],
        tied=bool(cfg.get("tie_word_embeddings", False)),
    )


def _build_dir(name: str, fields: dict) -> Path:
    spec = json.dumps({"fields": fields, "v": _FORMAT_VERSION, "seed": _SEED}, sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:10]
    target = bench_cache_dir() / f"{name}-L{fields['num_hidden_layers']}-{digest}"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=target.parent))
    try:
        tokenizer = build_tiny_tokenizer()
        tokenizer.model_max_length = fields["max_position_embeddings"]
        if len(tokenizer) > fields["vocab_size"]:
            raise ValueError(f"{name}: vocab_size {fields['vocab_size']} does not cover the tokenizer")
        config = transformers.Qwen3Config(
            **fields, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
        # Real checkpoints of these shapes ship in bf16; the small ones keep fp32 so CPU runs
        # see exactly the weights they were built with.
        dtype = torch.bfloat16 if name in DEEP_SHAPES else torch.float32
        # Random init of billions of weights is minutes on CPU; on a GPU it is seconds.
        build_device = "cuda" if torch.cuda.is_available() and name in DEEP_SHAPES else "cpu"
        with torch.random.fork_rng(devices=[]), torch.device(build_device):
            torch.manual_seed(_SEED)
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same build first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
