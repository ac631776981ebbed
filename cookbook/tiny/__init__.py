"""The embedded ``tiny`` model: a small Qwen3-architecture model with a byte-level tokenizer.

It is built deterministically (fixed seed, config shipped as package data in ``config.json``), saved
once in Hugging Face format to a cache directory, and then loaded through ``from_pretrained`` exactly
like any real model. Its weights are random: the recipes teach it.

A leaf: imports nothing of ours. The local backend (to load the model) and
``cookbook.tokenizer_utils`` (to build the tokenizer without a client) both import it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

TINY_NAME = "tiny"
_CONFIG_FILE = importlib.resources.files(__name__) / "config.json"
_FORMAT_VERSION = "1"  # bump when the build below changes

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "{{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}\n"
)


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def build_tiny_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Byte-level tokenizer: ids 0-255 are the bytes, then the chat special tokens."""
    vocab = {sym: i for i, sym in enumerate(_byte_symbols())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=_tiny_config_dict()["max_position_embeddings"],
    )


def _tiny_config_dict() -> dict:
    return json.loads(_CONFIG_FILE.read_text())


def default_cache_dir() -> Path:
    root = os.environ.get("COOKBOOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cookbook")
    return Path(root)


def tiny_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory holding the tiny model in Hugging Face format; built on first use."""
    spec = json.dumps(
        {"config": _tiny_config_dict(), "special": SPECIAL_TOKENS, "v": _FORMAT_VERSION,
         "torch": torch.__version__.split("+")[0]},
        sort_keys=True,
    )
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "models" / f"tiny-{digest}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    _build_into(target)
    return target


def _build_into(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=target.parent))
    try:
        tokenizer = build_tiny_tokenizer()
        cfg = dict(_tiny_config_dict())
        cfg.update(
            vocab_size=len(tokenizer),
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
        )
        config = transformers.Qwen3Config(**cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)  # atomic when target does not exist yet
        except OSError:
            if not (target / "model.safetensors").exists():  # lost a race to nobody: retry once
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
