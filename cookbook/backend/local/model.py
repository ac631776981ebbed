"""Loading a base model (``tiny``, a local directory or a Hugging Face id) and scoring tokens.

A :class:`BaseModel` is loaded once per engine and shared by every client on it: the frozen
weights live here, the LoRA adapters live with their clients.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from torch.utils.checkpoint import checkpoint
from transformers.cache_utils import Cache

from cookbook.tiny import TINY_NAME, tiny_model_dir

from . import errors, lora, memory
from .decode_step import DecodeStep
from .static_decode import StaticDecoder

transformers.utils.logging.disable_progress_bar()

# Never materialise fp32 [tokens x vocab] logits at once: the lm_head runs over chunks of positions
# whose fp32 logits take about this many bytes (the backward pass needs a few such buffers).
LOGITS_CHUNK_BYTES = 64 * 2**20
# Below this many bytes of fp32 logits for a whole micro-batch, backward keeps each chunk's logits
# instead of recomputing them (recomputing the lm_head costs time; keeping them costs memory).
LOGITS_KEEP_BYTES = 512 * 2**20


def logits_chunk(vocab_size: int) -> int:
    return max(16, min(8192, LOGITS_CHUNK_BYTES // (4 * vocab_size)))


def resolve_device(device: str | None) -> torch.device:
    """``None`` -> ``$COOKBOOK_DEVICE`` if set, else CUDA when available, else CPU."""
    if device is None:
        device = os.environ.get("COOKBOOK_DEVICE") or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` -> ``$COOKBOOK_DTYPE`` if set, else bf16 on CUDA and fp32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        dtype = os.environ.get("COOKBOOK_DTYPE") or "auto"
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float16": torch.float16, "fp16": torch.float16}[str(dtype)]


def model_location(base_model: str) -> str:
    """Where ``from_pretrained`` finds the model: the tiny cache dir, a local dir, or the hub id."""
    if base_model == TINY_NAME:
        return str(tiny_model_dir())
    return os.path.expanduser(base_model) if os.path.isdir(os.path.expanduser(base_model)) else base_model


@dataclass
class BaseModel:
    name: str
    location: str
    model: Any  # HF causal LM with LoRALinear wrappers; frozen (its submodules are reached by name)
    tokenizer: transformers.PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    decode_step: DecodeStep | None = None  # fast single-token step (None: decode with the model's forward)
    static_decoder: StaticDecoder | None = None  # fixed-shape, graph-captured decoding (None: eager decoding)
    checkpointing: "_Switch" = field(default_factory=lambda: _Switch(on=False))  # recompute decoder layers in backward
    always_checkpoint: bool = False  # the engine asked for activation checkpointing on every pass
    checkpointable: bool = False  # the decoder layers can be recomputed (Llama-style ``layers`` list)

    @classmethod
    def load(cls, base_model: str, device: torch.device, dtype: torch.dtype, *,
             activation_checkpointing: bool = False) -> "BaseModel":
        location = model_location(base_model)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(location)
            model: Any = transformers.AutoModelForCausalLM.from_pretrained(location, dtype=dtype,
                                                                           attn_implementation="sdpa")
        except (OSError, ValueError) as exc:  # unknown id, hub unreachable, not a model directory
            raise errors.ModelLoadError.for_model(base_model, exc) from exc
        model.to(device).eval()
        lora.wrap_model(model)
        switch = _Switch(on=activation_checkpointing)
        checkpointable = checkpoint_decoder_layers(model, switch)
        step = DecodeStep.for_model(model)
        return cls(base_model, location, model, tokenizer, device, dtype, step,
                   StaticDecoder.for_model(model, step, device, dtype), switch,
                   always_checkpoint=activation_checkpointing, checkpointable=checkpointable)

    def copy(self, dtype: torch.dtype, weights: dict[str, torch.Tensor] | None = None, *,
             trainable: bool = False) -> BaseModel:
        """A private copy of this model (full fine-tuning): loaded again from its location, then given
        ``weights`` (Hugging Face names, :func:`full_state`) when given; every parameter trainable when
        ``trainable``."""
        clone = BaseModel.load(self.name, self.device, dtype, activation_checkpointing=self.always_checkpoint)
        if weights is not None:
            load_full_state(clone.model, weights)
        if trainable:
            for p in clone.model.parameters():
                p.requires_grad_(True)
        return clone

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.model.parameters()}.values())

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().base.out_features)

    @property
    def max_context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)

    @property
    def eos_token_ids(self) -> list[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            return []
        return list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]

    def activation_cost(self) -> memory.ActivationCost:
        logits = 2 * LOGITS_KEEP_BYTES + 4 * LOGITS_CHUNK_BYTES  # kept chunks, or one recomputed chunk
        return memory.activation_cost(self.model.config, self.dtype, logits_bytes=logits,
                                      checkpointing_supported=self.checkpointable, device_type=self.device.type)

    def train_budget(self, cap_tokens: int) -> memory.Budget:
        """How many padded tokens a training micro-batch may hold now (free memory, model size, cap)."""
        return memory.Budget.of(self.activation_cost(), memory.free_memory(self.device), cap_tokens,
                                self.always_checkpoint)

    @contextlib.contextmanager
    def layer_checkpointing(self, on: bool) -> Iterator[None]:
        """Recompute decoder layers in backward for the passes run inside (always on if the engine asks)."""
        previous, self.checkpointing.on = self.checkpointing.on, on or self.always_checkpoint
        try:
            yield
        finally:
            self.checkpointing.on = previous

    @property
    def body(self) -> Any:
        return self.model.get_decoder()

    def body_with_cache(self, cache: Cache, **inputs: Any) -> tuple[torch.Tensor, Cache]:
        """The decoder body's forward with a KV cache: (last hidden states, the updated cache).

        transformers 5.2x renamed the cache argument and output from ``past_key_values`` to ``cache``
        (the old name warns); older versions know only the old one."""
        body = self.body
        name = "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
        out = body(**inputs, **{name: cache}, use_cache=True)
        return out.last_hidden_state, out[name]

    @property
    def lm_head(self) -> Any:
        return self.model.get_output_embeddings()

    def hidden_states(self, batch: Sequence[Sequence[int]]) -> tuple[torch.Tensor, list[int]]:
        """Final hidden states of right-padded sequences ([B, T, H]) and their lengths.

        With right padding and causal attention no real position ever attends to a pad,
        so no attention mask is needed.
        """
        lengths = [len(s) for s in batch]
        width = max(lengths)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        out = self.body(input_ids=ids.to(self.device), use_cache=False)
        return out.last_hidden_state, lengths

    def token_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for hidden states [n, H] and targets [n] or [n, K], in fp32, chunked."""
        pieces = []
        chunk = logits_chunk(self.vocab_size)
        recompute = torch.is_grad_enabled() and hidden.shape[0] * self.vocab_size * 4 > LOGITS_KEEP_BYTES
        chunk_logprobs = lora.keep_routing(self._chunk_logprobs) if recompute else self._chunk_logprobs
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            if recompute:
                pieces.append(checkpoint(chunk_logprobs, h, t, use_reentrant=False))
            else:
                pieces.append(self._chunk_logprobs(h, t))
        return torch.cat(pieces) if pieces else hidden.new_zeros(targets.shape, dtype=torch.float32)

    def _chunk_logprobs(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(h).float()
        lse = torch.logsumexp(logits, dim=-1)
        if t.dim() == 1:
            return logits.gather(-1, t[:, None])[:, 0] - lse
        return logits.gather(-1, t) - lse[:, None]

    def sequence_logprobs(self, inputs: Sequence[Sequence[int]], targets: Sequence[torch.Tensor],
                          documents: Sequence[torch.Tensor | None] | None = None,
                          token_budget: int = 0) -> list[torch.Tensor]:
        """Per-datum log p(targets) for one micro-batch of token sequences (uses the routed adapters).

        A datum with ``documents`` (document index per position, see ``validation.DOCUMENT_IDS``) runs
        as its documents, each an ordinary sequence: positions start at 0 and no token attends across
        documents, so it computes exactly what its documents compute as separate datums, and pays for
        attention within each document only (a block-diagonal mask over the whole row would pay for
        the row's square). Its logprobs are its documents' logprobs, concatenated. The documents run
        in length-sorted passes whose padded tokens together stay within ``token_budget`` (the cap the
        micro-batch was planned under) or the micro-batch's own padded size, whichever is larger.
        """
        pieces = document_pieces([len(s) for s in inputs], documents)
        sequences = [inputs[d][start:end] for d, start, end in pieces]
        piece_targets = [targets[d][start:end] for d, start, end in pieces]
        if len(pieces) == len(inputs):  # nothing packed: the micro-batch is one pass, as planned
            passes = [list(range(len(pieces)))]
        else:
            budget = max(token_budget, len(inputs) * max(len(s) for s in inputs))
            passes = memory.piece_passes([len(s) for s in sequences], budget, memory.overhead_tokens(self.device))
        logprobs: list[torch.Tensor] = [torch.empty(0)] * len(pieces)
        for group in passes:
            hidden, lengths = self.hidden_states([sequences[i] for i in group])
            flat_h = torch.cat([hidden[j, :n] for j, n in enumerate(lengths)])
            flat_t = torch.cat([piece_targets[i].to(self.device) for i in group])
            for i, lp in zip(group, torch.split(self.token_logprobs(flat_h, flat_t), lengths)):
                logprobs[i] = lp
        per_datum: list[list[torch.Tensor]] = [[] for _ in inputs]
        for (d, _, _), lp in zip(pieces, logprobs):
            per_datum[d].append(lp)
        return [parts[0] if len(parts) == 1 else torch.cat(parts) for parts in per_datum]

    def topk_logprobs(self, hidden: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (log-probability, token id) per hidden state [n, H], chunked (no grad)."""
        chunk = logits_chunk(self.vocab_size)
        values, ids = [], []
        for s in range(0, hidden.shape[0], chunk):
            top = torch.topk(torch.log_softmax(self.lm_head(hidden[s : s + chunk]).float(), -1), k, dim=-1)
            values.append(top.values)
            ids.append(top.indices)
        return torch.cat(values), torch.cat(ids)


def document_pieces(lengths: Sequence[int], documents: Sequence[torch.Tensor | None] | None
                    ) -> list[tuple[int, int, int]]:
    """(datum, start, end) of every document of every datum, in order; a datum without documents is one."""
    pieces = []
    for d, n in enumerate(lengths):
        ids = None if documents is None else documents[d]
        if ids is None or n == 0:
            pieces.append((d, 0, n))
            continue
        starts = [0] + (torch.nonzero(ids[1:] != ids[:-1]).flatten() + 1).tolist()
        pieces += [(d, s, e) for s, e in zip(starts, starts[1:] + [n])]
    return pieces


def _hf_key(key: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _state(model: Any) -> dict[str, torch.Tensor]:
    """The model's tensors (parameters and buffers) by Hugging Face name: the LoRA wrappers' ``.base`` dropped."""
    renames = {f"{name}.base.": f"{name}." for name, m in model.named_modules() if isinstance(m, lora.LoRALinear)}
    return {_hf_key(k, renames): v for k, v in model.state_dict(keep_vars=True).items()}


def full_state(model: Any) -> dict[str, torch.Tensor]:
    """The model's weights under their Hugging Face names; a tied weight appears once."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in _state(model).items():
        if id(value) not in seen:
            seen.add(id(value))
            out[key] = value.detach()
    return out


def load_full_state(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """Copy Hugging Face-named ``weights`` (as :func:`full_state` gives them) into a LoRA-wrapped model."""
    targets = _state(model)
    expected = set(full_state(model))
    if set(weights) != expected:
        unknown, missing = sorted(set(weights) - expected), sorted(expected - set(weights))
        raise errors.ModelMismatchError(
            f"full weights do not fit this model: unexpected {unknown[:3]}, missing {missing[:3]}")
    with torch.no_grad():
        for key, value in weights.items():
            targets[key].copy_(value)


@dataclass
class _Switch:
    on: bool = True


def checkpoint_decoder_layers(model: Any, switch: _Switch | None = None) -> bool:
    """Make each decoder layer recompute its activations in backward while ``switch.on`` (default: always).

    Applies only when gradients are being computed. The layers' ``forward`` is wrapped in place, so
    module names, and with them LoRA adapter and checkpoint keys, stay the same with and without
    checkpointing. Returns False (and changes nothing) for a model without a decoder layers list.
    """
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        if switch is not None and switch.on:
            raise ValueError(f"activation checkpointing: {type(model).__name__} has no decoder layers list")
        return False
    switch = switch or _Switch()
    for layer in layers:
        inner = layer.forward

        def forward(*args, _inner=inner, **kwargs):
            if switch.on and torch.is_grad_enabled():
                return checkpoint(lora.keep_routing(_inner), *args, use_reentrant=False, **kwargs)
            return _inner(*args, **kwargs)

        layer.forward = forward
    return True
