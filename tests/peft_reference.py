"""An independent reference for the local backend's LoRA: the same adapter built with PEFT on a plain
``transformers`` model (shared by the backend and distillation tests)."""

from __future__ import annotations

import peft
import torch
import transformers


def peft_model(client, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """``client``'s base model and LoRA adapter (A and B copied) as a PEFT model."""
    base = transformers.AutoModelForCausalLM.from_pretrained(client.base.location, dtype=dtype).to(device)
    targets = sorted({n.rsplit(".", 1)[-1] for n in client.adapter.a})
    cfg = peft.LoraConfig(r=client.adapter.spec.rank, lora_alpha=client.adapter.spec.alpha,
                          target_modules=targets, lora_dropout=0.0)
    # adapters in the model dtype, as ours compute (peft would upcast them to fp32 by default)
    model = peft.get_peft_model(base, cfg, autocast_adapter_dtype=False)
    for name in client.adapter.a:
        module = model.base_model.model.get_submodule(name)
        module.lora_A["default"].weight.data.copy_(client.adapter.a[name].detach())
        module.lora_B["default"].weight.data.copy_(client.adapter.b[name].detach())
    return model
