"""A Tinker-compatible HTTP server in front of the local reference backend.

The official ``tinker`` SDK (0.38) drives it unchanged::

    cookbook serve-tinker port=8000                       # or: main(["port=8000"])
    service = tinker.ServiceClient(base_url="http://127.0.0.1:8000", api_key="tml-anything")

so a team can share one GPU box, existing Tinker scripts run against it, and ``backend=tinker`` is
tested against a real server. It speaks the protocol of ``../shared/reference/tinker-sdk-0.38.md``
sections 10-11: client config, sessions and heartbeats, ``create_model`` / ``get_info``,
``forward_backward`` (protobuf in and out; ``forward`` is the same endpoint), ``optim_step``,
``save_weights`` / ``save_weights_for_sampler`` (named or ephemeral), ``load_weights`` (into a
model, or creating one from a checkpoint), sampling sessions, ``asample`` (protobuf result),
``retrieve_future`` with long polling, ``get_server_capabilities``, ``healthz``; telemetry is
accepted and dropped.

Semantics:

- Each training model's requests run strictly in ``seq_id`` order, whatever order they arrive in
  (``forward_backward`` chunks are sent in parallel, the first one last); gradients accumulate
  across chunks exactly as in one call. Sampling requests are not ordered: they reach the
  backend as they arrive, and the backend decodes concurrent ones (from any client) in one batch.
- Results are kept until fetched (then two more minutes, for a retried fetch), at most
  ``future_ttl_s`` if never fetched. ``retrieve_future`` holds the call up to ``long_poll_s``.
- Errors: a body that cannot be parsed gets 400, an unknown session / model / sampler / request
  id 404, a wrong or missing ``X-API-Key`` 401, a body over ``max_request_bytes`` 413 (all
  ``{"error", "category": "user"}``). A request that was accepted and then failed in the
  backend (bad token ids, a missing checkpoint, ...) fails its future: the SDK raises
  ``tinker.RequestFailedError`` with ``category`` ``user`` (or ``server`` for a bug, logged with
  its traceback). No input takes the server down.
- API keys: ``allowed_keys`` (or ``allowed_keys_file``) lists the accepted keys; without it any
  key starting with ``tml-`` is accepted, and then only a loopback ``host`` is allowed. Holders of
  an accepted key are equally trusted; session, model and request ids are unguessable.
- Checkpoint paths: the backend's ``local://<run>/<kind>/<name>`` is ``tinker://<run>/<kind>/<name>``
  on the wire (same directory, valid across restarts; ``<run>`` is the backend's run directory,
  not the SDK's model id). Only such paths are accepted from clients.
- Not supported (clear user errors): custom losses run on the server (the SDK runs
  ``forward_backward_custom`` client-side, which works), ``save_weights_external``, non-Adam
  optimizers, full fine-tuning, image / audio chunks, ``topk_sample_logprobs``,
  ``target_prompt_logprobs``, ``prompt_alt_tokens_k``, ``record_stability_info``, the REST
  listing endpoints (training runs, checkpoints). ``kind="inflight"`` samplers are snapshots.
- The tokenizer id the server reports is the backend's model location: a Hugging Face id, or a
  directory on the server (for ``tiny``, its cache; ``cookbook.tokenizer_utils.get_tokenizer("tiny")``
  builds the same tokenizer anywhere).

Modules: ``config`` (settings), ``guard`` (API key and size limit), ``routes`` (the endpoints),
``state`` (sessions, models, samplers, seq-id ordering), ``jobs`` (futures and long polling),
``wire`` (protobuf <-> ``tinker.types``), ``paths`` (``tinker://`` <-> ``local://``), ``errors``,
``app`` (the FastAPI app), ``runner`` (foreground / background thread), ``cli`` (``main``).
Reaches the backend only through ``cookbook.backend.service_client("local", ...)`` and its public
client methods.
"""

from .app import create_app
from .cli import main, parse_args
from .config import ServerConfig
from .runner import ServerThread, serve

__all__ = ["ServerConfig", "ServerThread", "create_app", "main", "parse_args", "serve"]
