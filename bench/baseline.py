"""The baseline side: plain ``transformers`` + ``peft``, written the way a straightforward loop is.

Training: the batch right-padded to its longest sequence, ``attention_mask`` over the pads,
labels -100 on pads, full logits, summed token cross-entropy (the local backend's loss is a sum
too), ``backward``, ``AdamW.step``, ``zero_grad``. The LoRA matches ours: rank 32, alpha 32, no
dropout, on q/k/v/o/gate/up/down and lm_head, adapter weights in fp32 (peft's default upcast).
Sampling: ``model.generate`` with multinomial sampling at temperature 1 (no top-k / top-p),
exactly ``new_tokens`` tokens per row (``min_new_tokens`` keeps end-of-text out).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import peft
import torch
import torch.nn.functional as F
import transformers

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
LORA_RANK = 32


def load_model(model_dir: Path, device: torch.device, dtype: torch.dtype) -> transformers.PreTrainedModel:
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, attn_implementation="sdpa")
    return model.to(device)


def micro_batch_rows(n_rows: int, width: int, bytes_per_token: float, budget_bytes: float) -> int:
    """Rows per micro-batch so that one micro-batch's activations fit ``budget_bytes``.

    A power of two, at least 1, at most ``n_rows``. Used only when the whole padded batch
    would not fit (the 150k-vocabulary logits alone are ~1 GB per 512-token row in fp32).
    """
    fit = int(budget_bytes // max(1.0, width * bytes_per_token))
    if fit >= n_rows:
        return n_rows
    rows = 1
    while rows * 2 <= fit:
        rows *= 2
    return rows


class Trainer:
    """A peft LoRA model, its AdamW and the padded batch, split into row micro-batches if needed."""

    def __init__(self, model_dir: Path, seqs: list[list[int]], device: torch.device, dtype: torch.dtype,
                 rows_per_micro_batch: int | None = None, rank: int = LORA_RANK,
                 targets: list[str] = LORA_TARGETS) -> None:
        model = load_model(model_dir, device, dtype)
        model.config.use_cache = False
        # alpha 32 as the backend's default (bench/train_processes.py varies the rank)
        config = peft.LoraConfig(r=rank, lora_alpha=32, lora_dropout=0.0, target_modules=targets)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")  # lm_head LoRA on a tied model
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft vs transformers 5
            self.model = peft.get_peft_model(model, config)
            self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0)
        width = max(len(s) for s in seqs) - 1
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for i, s in enumerate(seqs):
            n = len(s) - 1
            ids[i, :n] = torch.as_tensor(s[:-1])
            mask[i, :n] = 1
            labels[i, :n] = torch.as_tensor(s[1:])
        step = rows_per_micro_batch or len(seqs)
        self.rows_per_micro_batch = step
        self.micro_batches = [(ids[i:i + step].to(device), mask[i:i + step].to(device), labels[i:i + step].to(device))
                              for i in range(0, len(seqs), step)]

    def forward_backward(self) -> float:
        """Forward + summed cross-entropy + backward over the padded batch; returns the loss."""
        total = torch.zeros((), dtype=torch.float32)
        for ids, mask, labels in self.micro_batches:
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
            loss.backward()
            total += loss.detach().cpu()
        return float(total)

    def step(self) -> float:
        loss = self.forward_backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.params)


class Generator:
    """A plain (no LoRA) model of the same directory, sampled with ``generate``."""

    def __init__(self, model_dir: Path, device: torch.device, dtype: torch.dtype) -> None:
        self.model = load_model(model_dir, device, dtype).eval()
        self.device = device
        pad = self.model.generation_config.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def _config(self, new_tokens: int) -> transformers.GenerationConfig:
        return transformers.GenerationConfig(
            do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, pad_token_id=self.pad_id, eos_token_id=self.model.generation_config.eos_token_id)

    @torch.no_grad()
    def per_request(self, rows: list[list[int]], new_tokens: int, seed: int = 0) -> list[list[int]]:
        """One batch-1 ``generate`` call per row, one after the other."""
        config, out = self._config(new_tokens), []
        for i, row in enumerate(rows):
            torch.manual_seed(seed + i)
            ids = torch.as_tensor([row], device=self.device)
            gen = self.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
            out.append(gen[0, len(row):].tolist())
        return out

    @torch.no_grad()
    def batched(self, rows: list[list[int]], new_tokens: int, seed: int = 0) -> list[list[int]]:
        """One ``generate`` call over all rows, left-padded."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row):] = torch.as_tensor(row)
            mask[i, width - len(row):] = 1
        torch.manual_seed(seed)
        gen = self.model.generate(ids.to(self.device), attention_mask=mask.to(self.device),
                                  generation_config=self._config(new_tokens))
        return [g.tolist() for g in gen[:, width:]]
