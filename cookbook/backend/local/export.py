"""Export a local checkpoint as a merged Hugging Face model or as a PEFT LoRA adapter.

The merged model is a plain ``transformers`` directory (weights ``W + alpha/rank * B @ A``, or a
full fine-tune's own weights) that vLLM, transformers or llama.cpp converters load with no extra
code; the PEFT directory (``adapter_config.json`` + ``adapter_model.safetensors``) loads with
``peft.PeftModel`` or vLLM's LoRA support on top of the original base model. ``save_weights_external``
writes the same directories from a training client's current weights (:func:`write_merged`,
:func:`write_peft`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import save_file

from . import checkpoints, errors
from .model import model_location

transformers.utils.logging.disable_progress_bar()


def _load(checkpoint: str, root: Path | None) -> tuple[checkpoints.CheckpointInfo, dict[str, torch.Tensor]]:
    directory = checkpoints.resolve(checkpoint, root or checkpoints.default_root())
    return checkpoints.read_info(directory), checkpoints.load_weights(directory)


def _pairs(weights: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    names = sorted({k.rsplit(".lora_", 1)[0] for k in weights})
    return {n: (weights[f"{n}.lora_A"].float(), weights[f"{n}.lora_B"].float()) for n in names}


def export_merged(checkpoint: str, out_dir: str | os.PathLike, *, root: Path | None = None,
                  dtype: torch.dtype = torch.float32) -> Path:
    """Write base weights with the adapter folded in (or a full fine-tune's weights), plus the tokenizer."""
    info, weights = _load(checkpoint, root)
    return write_merged(info, weights, out_dir, dtype=dtype)


def write_merged(info: checkpoints.CheckpointInfo, weights: dict[str, torch.Tensor], out_dir: str | os.PathLike, *,
                 dtype: torch.dtype = torch.float32) -> Path:
    location = model_location(info.base_model)
    model: Any = transformers.AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    if info.lora is None:  # full fine-tuning: the checkpoint holds every weight
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
        if unexpected or any(not k.endswith("lm_head.weight") for k in missing):
            raise errors.ModelMismatchError(f"the checkpoint's weights do not fit {info.base_model}")
    else:
        pairs = _pairs(weights)
        if "lm_head" in pairs and model.config.tie_word_embeddings:
            # Merging into a tied head would change the input embeddings too: untie first.
            model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
            model.config.tie_word_embeddings = False
        with torch.no_grad():
            for name, (a, b) in pairs.items():
                model.get_submodule(name).weight += (b @ a) * info.lora.scale
    out = Path(out_dir)
    model.to(dtype).save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(location).save_pretrained(out)
    return out


def export_peft(checkpoint: str, out_dir: str | os.PathLike, *, root: Path | None = None) -> Path:
    """Write a PEFT LoRA adapter directory for the checkpoint's base model."""
    info, weights = _load(checkpoint, root)
    return write_peft(info, weights, out_dir)


def write_peft(info: checkpoints.CheckpointInfo, weights: dict[str, torch.Tensor], out_dir: str | os.PathLike) -> Path:
    if info.lora is None:
        raise errors.InvalidRequestError("a full fine-tune has no LoRA adapter: export it merged instead")
    pairs = _pairs(weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (a, b) in pairs.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.contiguous()
    save_file(tensors, out / "adapter_model.safetensors")
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": model_location(info.base_model),
        "r": info.lora.rank,
        "lora_alpha": info.lora.alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": sorted({n.rsplit(".", 1)[-1] for n in pairs}),
        "fan_in_fan_out": False,
        "inference_mode": True,
        "use_rslora": False,
        "modules_to_save": None,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out
