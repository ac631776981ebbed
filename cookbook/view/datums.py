"""The datum view: a run's training examples rendered the way its loop renders them, with weights.

The run's ``config.json`` says where its data comes from (``data.source`` and the rest of the
``data`` section of ``sl/chat_sft`` / ``dpo/chat_dpo``-style configs), which model's tokenizer and
which renderer (``renderer``, else the recommended one for ``base_model``). Examples are built by
the loops' own functions (``cookbook.supervised.data.conversation_to_datum``,
``cookbook.preference.data.comparison_to_pair``), so the weighted tokens shown are exactly the ones
the loss sees. A run whose config names no ``data.source`` (e.g. the quickstart, or RL) has none.

DPO comparisons can be scored on request: each side's implicit reward
``beta * (log p_policy(completion) - log p_reference(completion))`` with the policy at one of the
run's checkpoints and the reference the loop used (``reference_path``, else ``load_checkpoint_path``
unless ``reference_base``, else the base model; 0 with ``reference_free``), through a sampling
client's ``compute_logprobs`` on the run's backend. That loads the model into the viewer's process.

May import ``cookbook.supervised.data``, ``cookbook.preference.data``, ``cookbook.tokenizer_utils``,
``cookbook.backend`` (the service factory), ``cookbook.primitives``, ``cookbook.errors`` and ``renderers``.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

from cookbook.errors import ConfigError, UserError

MAX_COUNT = 50  # examples per request


def data_kind(config: dict[str, Any]) -> str | None:
    """``"dpo"`` (a preference run), ``"sft"`` (a supervised run) or None (no ``data.source`` to read)."""
    data = config.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        return None
    return "dpo" if "beta" in config and "reference_free" in config else "sft"


def datums(config: dict[str, Any], checkpoints: list[dict[str, Any]], *, offset: int = 0, count: int = 10,
           score: str | None = None) -> dict[str, Any]:
    """Examples ``offset .. offset + count`` of the run's data, each token with its weight; for DPO runs
    with ``score`` (a checkpoint name), each side's implicit reward under that checkpoint."""
    kind = data_kind(config)
    if kind is None:
        return {"kind": None, "message": "this run's config.json names no data.source (the datum view shows "
                                         "sl/chat_sft- and dpo/chat_dpo-style runs)"}
    count = max(0, min(count, MAX_COUNT))
    offset = max(0, offset)
    tokenizer, renderer, renderer_name = _renderer(config)
    data = config["data"]
    head = {"kind": kind, "renderer": renderer_name, "base_model": config.get("base_model", "tiny"),
            "source": data["source"], "offset": offset}
    if kind == "sft":
        from cookbook.supervised.data import conversation_to_datum

        conversations = _conversations(json.dumps(data, sort_keys=True), int(config.get("seed", 0)))
        items = []
        for index in range(offset, min(offset + count, len(conversations))):
            datum = conversation_to_datum(conversations[index], renderer, data.get("train_on_what",
                                          "all_assistant_messages"), data.get("max_length"))
            items.append({"index": index, "messages": conversations[index],
                          **(_tokens(datum, tokenizer) if datum is not None else {"tokens": [], "weights": []})})
        return {**head, "train_on_what": data.get("train_on_what"), "total": len(conversations), "items": items}

    from cookbook.preference.data import comparison_to_pair

    comparisons = _comparisons(json.dumps(data, sort_keys=True), int(config.get("seed", 0)))
    items = []
    pairs = []
    for index in range(offset, min(offset + count, len(comparisons))):
        comparison = comparisons[index]
        pair = comparison_to_pair(comparison, renderer, data.get("max_length"))
        item: dict[str, Any] = {"index": index, "prompt": list(comparison.prompt)}
        if pair is None:
            item["dropped"] = "a completion was truncated away (data.max_length)"
        else:
            item["chosen"], item["rejected"] = _tokens(pair[0], tokenizer), _tokens(pair[1], tokenizer)
            pairs.append((item, pair))
        items.append(item)
    out = {**head, "total": len(comparisons), "beta": config.get("beta"), "items": items}
    if score:
        out["scored_with"] = _score(config, checkpoints, score, pairs)
    return out


def _tokens(datum: Any, tokenizer: Any) -> dict[str, Any]:
    """Every token of the datum's sequence, decoded alone, and its weight (the first token has none)."""
    targets = [int(t) for t in _ints(datum.loss_fn_inputs["target_tokens"])]
    tokens = datum.model_input.to_ints() + targets[-1:]
    weights = [0.0] + [float(w) for w in _ints(datum.loss_fn_inputs["weights"])]
    return {"tokens": [tokenizer.decode([t], skip_special_tokens=False) for t in tokens], "ids": tokens,
            "weights": weights}


def _ints(value: Any) -> list[Any]:
    return value.to_numpy().tolist() if hasattr(value, "to_numpy") else list(value)


@functools.lru_cache(maxsize=4)
def _renderer_for(base_model: str, renderer: str | None) -> tuple[Any, Any, str]:
    from cookbook.tokenizer_utils import get_tokenizer
    from renderers import get_recommended_renderer_name, get_renderer

    tokenizer = get_tokenizer(base_model)
    name = renderer or get_recommended_renderer_name(base_model)
    return tokenizer, get_renderer(name, tokenizer), name


def _renderer(config: dict[str, Any]) -> tuple[Any, Any, str]:
    return _renderer_for(str(config.get("base_model") or "tiny"), config.get("renderer"))


@functools.lru_cache(maxsize=4)
def _conversations(data_json: str, seed: int) -> list[Any]:
    from cookbook.supervised.data import DatasetSpec, load_conversations

    data = json.loads(data_json)
    spec = DatasetSpec(data["source"], data.get("split", "train"), data.get("messages_field", "messages"),
                       data.get("prompt_field"), data.get("response_field"), data.get("system_prompt"))
    conversations = load_conversations(spec, seed=seed)
    return conversations[: data["max_examples"]] if data.get("max_examples") else conversations


@functools.lru_cache(maxsize=4)
def _comparisons(data_json: str, seed: int) -> list[Any]:
    from cookbook.preference.data import load_comparisons

    data = json.loads(data_json)
    return load_comparisons(data["source"], split=data.get("split", "train"), seed=seed,
                            max_examples=data.get("max_examples"))


_score_lock = threading.Lock()


def _score(config: dict[str, Any], checkpoints: list[dict[str, Any]], name: str,
           pairs: list[tuple[dict[str, Any], tuple[Any, Any]]]) -> dict[str, Any]:
    """Fill in each item's ``chosen_reward`` / ``rejected_reward`` under checkpoint ``name``."""
    from tinker import types

    from cookbook.backend import service_client
    from cookbook.primitives import ready

    record = next((c for c in checkpoints if c.get("name") == name), None)
    if record is None:
        raise ConfigError(f"no checkpoint named {name!r} in this run")
    policy_path = record.get("sampler_path") or record.get("state_path")
    beta = float(config.get("beta") or 0.0)
    base_model = str(config.get("base_model") or "tiny")
    reference_path = config.get("reference_path") or (None if config.get("reference_base")
                                                        else config.get("load_checkpoint_path"))
    kwargs = {"base_url": config["base_url"]} if config.get("base_url") else {}
    with _score_lock:
        service = _service(str(config.get("backend") or "local"), json.dumps(kwargs), service_client)
        policy = ready(service.create_sampling_client(model_path=policy_path))
        reference = None
        if not config.get("reference_free"):
            reference = ready(service.create_sampling_client(model_path=reference_path) if reference_path
                               else service.create_sampling_client(base_model=base_model))

        def submit(client: Any, datum: Any) -> Any:
            targets = _ints(datum.loss_fn_inputs["target_tokens"])
            return client.compute_logprobs(types.ModelInput.from_ints(datum.model_input.to_ints() + targets[-1:]))

        jobs = [(item, side, datum, submit(policy, datum), reference and submit(reference, datum))
                for item, pair in pairs for side, datum in zip(("chosen", "rejected"), pair)]
        for item, side, datum, pol, ref in jobs:
            weights = _ints(datum.loss_fn_inputs["weights"])
            logp = _weighted(pol.result(), weights)
            ref_logp = _weighted(ref.result(), weights) if ref is not None else 0.0
            item[f"{side}_reward"] = beta * (logp - ref_logp)
    for item, _ in pairs:
        item["margin"] = item["chosen_reward"] - item["rejected_reward"]
    return {"checkpoint": name, "path": policy_path, "reference": None if config.get("reference_free")
            else reference_path or f"{base_model} (base model)", "beta": beta}


def _weighted(logprobs: list[float | None], weights: list[float]) -> float:
    """Sum of target logprobs x weights; ``logprobs`` are per position of the full sequence (the first None)."""
    return float(sum((lp or 0.0) * w for lp, w in zip(logprobs[1:], weights)))


@functools.lru_cache(maxsize=2)
def _service(backend: str, kwargs_json: str, factory: Any) -> Any:
    try:
        return factory(backend, **json.loads(kwargs_json))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend that cannot start is the user's setup to fix
        raise ConfigError(f"cannot make a {backend} service client to score with: {exc}") from exc
