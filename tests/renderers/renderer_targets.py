"""What each renderer is checked against: its template, the template's options, how our messages
are handed to the template, and the documented differences, stated as the expected rendering."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from renderer_corpus import Conversation
from template_oracle import PINNED_NOW, load_template, load_vendored_template, render_template
from tokenizer_builders import family_tokenizer

import renderers
from renderers import text_content
from renderers.deepseek import tools_system_prompt
from renderers.nemotron import inline_content
from renderers.qwen3 import qwen_tools_text
from renderers.role_colon import CHAT_TEMPLATE as ROLE_COLON_TEMPLATE
from renderers.tiny import flatten_content

# The tiny model's chat template, as given in the project's issue.
TINY_TEMPLATE = """{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- endif -%}"""

LLAMA_DATE = PINNED_NOW.strftime("%d %b %Y")
MISTRAL_DATE = PINNED_NOW.strftime("%Y-%m-%d")
GPT_OSS_DATE = PINNED_NOW.strftime("%Y-%m-%d")


def qwen3_instruct_template() -> str:
    """The 2507 instruct template is not among the shared templates: it is the Qwen3 template
    without reasoning handling, derived here by switching that handling off."""
    source = load_template("Qwen-Qwen3-0.6B.jinja")
    for branch in ("{%- if '</think>' in message.content %}", "{%- if loop.index0 > ns.last_query_index %}"):
        assert source.count(branch) == 1
        source = source.replace(branch, "{%- if false %}")
    return source


@dataclass(frozen=True)
class Target:
    id: str
    renderer: str
    tokenizer: str
    template: Callable[[], str]
    renderer_options: dict[str, Any]
    template_options: dict[str, Any]
    arguments_as_json_text: bool  # False: templates that apply tojson to arguments get objects
    supports: Callable[[Conversation], bool] = lambda conv: True

    def make_renderer(self) -> renderers.Renderer:
        return renderers.get_renderer(self.renderer, family_tokenizer(self.tokenizer), **self.renderer_options)

    def template_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Our messages as the template expects them: joined text content, arguments as objects
        for templates that `tojson` them, no empty fields."""
        converted = []
        for m in messages:
            out: dict[str, Any] = {"role": m["role"], "content": text_content(m)}
            if self.renderer == "nemotron_nano_v2":
                out["content"] = inline_content(m)  # documented: reasoning goes to the template inside the content
            elif m.get("thinking") is not None:
                out["thinking"] = m["thinking"]
            if m.get("tool_calls"):
                out["tool_calls"] = [
                    {**c, "function": {**c["function"], "arguments": c["function"]["arguments"] if self.arguments_as_json_text else json.loads(c["function"]["arguments"])}}
                    for c in m["tool_calls"]
                ]
            for key in ("tool_call_id", "name"):
                if key in m:
                    out[key] = m[key]
            converted.append(out)
        return converted

    def expected(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, add_generation_prompt: bool) -> str:
        """The text the renderer must produce: the template's rendering, with the renderer's
        documented differences applied."""
        tokenizer = family_tokenizer(self.tokenizer)
        msgs = self.template_messages(messages)
        kwargs = dict(self.template_options, bos_token=tokenizer.bos_token or "", eos_token=tokenizer.eos_token or "")
        if self.renderer == "tiny":
            msgs, tools = tiny_flattened(messages, tools), None
        if self.renderer in ("deepseekv3", "deepseekv3_thinking") and tools:
            # Documented: tool declarations go into the system prompt as one more system message.
            msgs, tools = msgs + [{"role": "system", "content": tools_system_prompt(tools)}], None
        text = render_template(self.template(), msgs, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs)
        if self.renderer == "deepseekv3_thinking":
            text = deepseek_thinking_final_round(self, messages, msgs, text, kwargs)
        if self.renderer.startswith("deepseekv32") and add_generation_prompt:
            # Documented: after a user turn or a closed block of tool results the template's text
            # already ends with the assistant header; the prompt is the rendering without the extra turn.
            plain = render_template(self.template(), msgs, tools=tools, **kwargs)
            if messages and messages[-1]["role"] in ("user", "tool") and plain.endswith(("<think>", "</think>")):
                text = plain
        if self.renderer == "minimax_m2":
            # Documented: the vendored (Unsloth) copy writes a newline the official template does not.
            text = text.replace("</minimax:tool_call>\n[e~[", "</minimax:tool_call>[e~[")
        return text


def tiny_flattened(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    flat = [{"role": m["role"], "content": flatten_content(m)} for m in messages]
    if tools:
        if flat and flat[0]["role"] == "system":
            flat[0]["content"] += "\n\n" + qwen_tools_text(tools)
        else:
            flat.insert(0, {"role": "system", "content": qwen_tools_text(tools)})
    return flat


def deepseek_thinking_final_round(target: Target, messages, template_msgs, text: str, kwargs) -> str:
    """Documented: the assistant message answering the last user message is rendered as the
    thinking generation prompt followed by `{thinking}</think>{content}`, where the template
    writes `<｜Assistant｜></think>{content}`."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users or users[-1] + 1 >= len(messages) or messages[users[-1] + 1]["role"] != "assistant":
        return text
    last_user = users[-1]
    system_tail = template_msgs[len(messages) :]  # the tools system message, if any
    prefix = render_template(target.template(), template_msgs[: last_user + 1] + system_tail, **kwargs)
    assert text.startswith(prefix)
    rest = text[len(prefix) :]
    switch = "<｜Assistant｜></think>"
    assert rest.startswith(switch)
    thinking = messages[last_user + 1].get("thinking") or ""
    return prefix + "<｜Assistant｜><think>" + thinking + "</think>" + rest[len(switch) :]


def _no_tool_use(conv: Conversation) -> bool:
    return not conv.tools and not conv.has_tool_use


def _llama_supports(conv: Conversation) -> bool:
    return not conv.has_parallel_calls


def _gpt_oss_supports(conv: Conversation) -> bool:
    both = any(m.get("tool_calls") and text_content(m) and m.get("thinking") for m in conv.messages)
    return not conv.has_parallel_calls and not both


def _alternates(conv: Conversation) -> bool:
    """User/assistant alternation after an optional first system message, no tools (Gemma 3)."""
    rest = conv.messages[1:] if conv.messages[0]["role"] == "system" else conv.messages
    return not conv.tools and not conv.has_tool_use and all((m["role"] == "user") == (k % 2 == 0) for k, m in enumerate(rest))


def _mistral_supports(conv: Conversation) -> bool:
    rest = conv.messages[1:] if conv.messages[0]["role"] == "system" else conv.messages
    if any(m["role"] == "system" for m in rest):
        return False
    plain = [m for m in rest if m["role"] != "tool" and not m.get("tool_calls")]
    return all((m["role"] == "user") == (k % 2 == 0) for k, m in enumerate(plain))


def _nemotron_supports(conv: Conversation) -> bool:
    """The template writes a last assistant message with both text and calls as two turns, and one
    with neither as nothing: conversations whose assistant messages could be last that way are out."""
    for m in conv.messages:
        if m["role"] != "assistant":
            continue
        has_text = bool(inline_content(m).strip())
        if bool(m.get("tool_calls")) == has_text:
            return False
    return True


def _minimax_supports(conv: Conversation) -> bool:
    # Documented: the vendored copy leaves inline <think> content as written (the official template splits it).
    return not any(m.get("thinking") is None and "</think>" in text_content(m) for m in conv.messages if m["role"] == "assistant")


def _has_generated_text(conv: Conversation) -> bool:
    """GLM with thinking off: an empty answer is all prompt (`<|assistant|>\\n<think></think>`), nothing to train."""
    return all(text_content(m) or m.get("thinking") or m.get("tool_calls") for m in conv.messages if m["role"] == "assistant")


def _vendored(name: str) -> Callable[[], str]:
    return lambda: load_vendored_template(name)


def _qwen() -> str:
    return load_template("Qwen-Qwen3-0.6B.jinja")


def _template(name: str) -> Callable[[], str]:
    return lambda: load_template(name)


TARGETS: list[Target] = [
    Target("role_colon", "role_colon", "llama3_base", lambda: ROLE_COLON_TEMPLATE, {}, {}, True, _no_tool_use),
    Target("role_colon-no-bos", "role_colon", "tiny", lambda: ROLE_COLON_TEMPLATE, {}, {}, True, _no_tool_use),
    Target("tiny", "tiny", "tiny", lambda: TINY_TEMPLATE, {}, {}, True),
    Target("qwen3", "qwen3", "qwen3", _qwen, {}, {}, True),
    Target("qwen3-objects", "qwen3", "qwen3", _qwen, {}, {}, False),
    Target("qwen3_disable_thinking", "qwen3_disable_thinking", "qwen3", _qwen, {}, {"enable_thinking": False}, True),
    Target("qwen3_instruct", "qwen3_instruct", "qwen3", qwen3_instruct_template, {}, {}, True),
    Target("llama3-3.1-default-date", "llama3", "llama3", _template("meta-llama-Llama-3.1-8B-Instruct.jinja"), {}, {}, False, _llama_supports),
    Target("llama3-3.3-default-date", "llama3", "llama3", _template("meta-llama-Llama-3.3-70B-Instruct.jinja"), {}, {}, False, _llama_supports),
    Target("llama3-3.1", "llama3", "llama3", _template("meta-llama-Llama-3.1-8B-Instruct.jinja"), {"date": LLAMA_DATE}, {"date_string": LLAMA_DATE}, False, _llama_supports),
    Target("llama3-3.2", "llama3", "llama3", _template("meta-llama-Llama-3.2-3B-Instruct.jinja"), {"date": LLAMA_DATE}, {}, False, _llama_supports),
    Target("llama3-3.3", "llama3", "llama3", _template("meta-llama-Llama-3.3-70B-Instruct.jinja"), {"date": LLAMA_DATE}, {"date_string": LLAMA_DATE}, False, _llama_supports),
    Target("deepseekv3", "deepseekv3", "deepseek", _template("deepseek-ai-DeepSeek-V3.1.jinja"), {}, {"thinking": False}, True),
    Target("deepseekv3_thinking", "deepseekv3_thinking", "deepseek", _template("deepseek-ai-DeepSeek-V3.1.jinja"), {}, {"thinking": True}, True),
    Target("kimi_k2", "kimi_k2", "kimi", _template("moonshotai-Kimi-K2.jinja"), {}, {}, False),
    Target("glm45", "glm45", "glm45", _vendored("zai-org-GLM-4.6.jinja"), {}, {}, False),
    Target("glm45_disable_thinking", "glm45_disable_thinking", "glm45", _vendored("zai-org-GLM-4.6.jinja"), {}, {"enable_thinking": False}, False, _has_generated_text),
    Target("gemma3", "gemma3", "gemma3", _vendored("google-gemma-3-it.jinja"), {}, {}, True, _alternates),
    Target("mistral_small", "mistral_small", "mistral", _vendored("mistralai-Mistral-Small-3.1-24B-Instruct-2503.jinja"), {"date": MISTRAL_DATE}, {}, False, _mistral_supports),
    Target("nemotron_nano_v2", "nemotron_nano_v2", "nemotron", _vendored("nvidia-NVIDIA-Nemotron-Nano-9B-v2.jinja"), {}, {}, True, _nemotron_supports),
    Target("deepseekv32", "deepseekv32", "deepseek_v32", _vendored("deepseek-ai-DeepSeek-V3.2.jinja"), {}, {}, False),
    Target("deepseekv32_disable_thinking", "deepseekv32_disable_thinking", "deepseek_v32", _vendored("deepseek-ai-DeepSeek-V3.2.jinja"), {}, {"enable_thinking": False}, False),
    Target("minimax_m2", "minimax_m2", "minimax", _vendored("MiniMaxAI-MiniMax-M2.jinja"), {}, {}, False, _minimax_supports),
    *[
        Target(f"gpt_oss-{effort}", f"gpt_oss_{effort}_reasoning", "gpt_oss", _template("openai-gpt-oss-120b.jinja"), {"date": GPT_OSS_DATE}, {"reasoning_effort": effort}, False, _gpt_oss_supports)
        for effort in ("low", "medium", "high")
    ],
]


# -- what survives a round trip, and where the generation prompt is a prefix ---------------------


def canonical(message: dict[str, Any]) -> tuple[str, str | None, list[tuple[str, Any]]]:
    """(content, thinking, [(tool name, arguments as JSON)]) with empty thinking as None."""
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or []]
    return text_content(message), message.get("thinking") or None, calls


def expected_parse(target: Target, messages: list[dict[str, Any]], i: int) -> tuple[str, str | None, list[tuple[str, Any]]]:
    """What parsing the rendered turn of messages[i] (rendered as the last message) gives back,
    per the family's documented behaviour."""
    content, thinking, calls = canonical(messages[i])
    family = target.renderer
    inline = messages[i].get("thinking") is None and "</think>" in content
    if inline and family in ("qwen3", "qwen3_disable_thinking", "tiny"):
        # The Qwen3 template splits inline reasoning off; tiny's parser reads the same notation.
        thinking = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
        content = content.split("</think>")[-1].lstrip("\n")
    if inline and family in ("deepseekv3", "deepseekv3_thinking"):
        content = content.split("</think>", 1)[1]  # the template cuts the reasoning off
    if family in ("qwen3", "qwen3_disable_thinking"):
        return content.lstrip("\n"), (thinking or "").strip("\n") or None, calls
    if family == "tiny":
        return (content.lstrip("\n") if thinking else content), (thinking.strip("\n") or None) if thinking else None, calls
    if family == "llama3":
        return ("" if calls else content.strip()), None, calls
    if family == "deepseekv3_thinking":
        after_user = i > 0 and messages[i - 1]["role"] == "user"
        return content, thinking if after_user else None, calls
    if family.startswith("gpt_oss"):
        if calls:  # content or thinking goes to the analysis channel
            return "", content or thinking, calls
        return content, thinking, calls
    if family.startswith("glm45"):
        if inline:
            thinking = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
        return content.strip(), (thinking or "").strip() or None, calls
    if family == "gemma3":
        return content.strip(), None, calls
    if family == "mistral_small":
        return ("" if calls else content), None, calls
    if family == "nemotron_nano_v2":
        written = inline_content(messages[i]).strip()
        if calls:
            return "", None, calls  # text and calls are never both written (unsupported conversations)
        if "</think>" in written:
            reasoning, written = written.split("</think>", 1)
            return written.lstrip("\n"), reasoning.removeprefix("<think>").strip("\n") or None, calls
        return written, None, calls
    if family == "deepseekv32":
        return content, thinking, calls
    if family == "deepseekv32_disable_thinking":
        return content, None, calls  # no reasoning in this mode: content is kept as written
    if family == "minimax_m2":
        return content, thinking, calls
    # role_colon, qwen3_instruct, deepseekv3, kimi_k2: no thinking
    return content, None, calls


def round_trips(target: Target, messages: list[dict[str, Any]], i: int) -> bool:
    """Whether rendering the parsed messages[i] gives its tokens back. Not for inline reasoning in
    families that write content as given: the parser moves the reasoning to `thinking`, which
    renders differently (documented)."""
    message = messages[i]
    inline = message.get("thinking") is None and "</think>" in text_content(message)
    return not (inline and target.renderer == "nemotron_nano_v2")


def prefix_holds(target: Target, messages: list[dict[str, Any]], i: int) -> bool:
    """Whether the template makes build_generation_prompt(messages[:i]) a prefix of the training
    example ending with messages[i] (documented exceptions)."""
    message = messages[i]
    if target.renderer == "qwen3_disable_thinking":
        if message.get("thinking") or "</think>" in text_content(message):
            return False  # the prompt has the empty think block, the example the real one
        if not any(m["role"] == "user" for m in messages[:i]):
            return False  # with no user query before it, the template writes no think block
    if target.renderer == "kimi_k2" and i == 0:
        return False  # the default system turn is only written for a non-empty conversation
    if target.renderer == "glm45_disable_thinking" and (message.get("thinking") or "</think>" in text_content(message)):
        return False  # the prompt has the empty think block, the example the real one
    if target.renderer == "nemotron_nano_v2" and message.get("tool_calls"):
        return False  # a last tool-call turn has no think block; the prompt opens one
    if target.renderer.startswith("deepseekv32") and (i == 0 or messages[i - 1]["role"] == "assistant"):
        return False  # no user turn before it ends with the assistant header
    if target.renderer == "minimax_m2" and not message.get("thinking"):
        return False  # the prompt opens a think block that a turn without reasoning does not have
    if target.renderer.startswith("gpt_oss") and not message.get("tool_calls"):
        # A final answer makes the template drop the analysis of earlier tool-call messages.
        for j in range(i - 1, -1, -1):
            previous = messages[j]
            if previous["role"] == "assistant" and not previous.get("tool_calls"):
                break
            if previous["role"] == "assistant" and (text_content(previous) or previous.get("thinking")):
                return False
    return True
