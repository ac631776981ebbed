"""Sessions, training models and samplers, and the order in which each model's requests run.

A training model's requests carry ``seq_id`` 1, 2, 3, ... (the SDK numbers them per training
client, in call order) and may arrive in any order: a ``forward_backward`` split into chunks is
sent as several requests with consecutive seq ids, in parallel, the first chunk last. Each model
has a dispatcher task that hands request ``n`` to the local backend only after ``n - 1`` (creating
the model is request 0), so the backend sees one ordered stream per model and gradient
accumulation across chunks equals one call. Handing over is quick (the backend queues the work and
returns a future); the reply is attached when that future resolves, so the dispatcher never waits
for the computation itself. Calls into the backend run in a thread pool: some (creating a model,
snapshotting weights for a sampler) block until the backend has run everything queued before them.

Sampling requests are not ordered: each goes to the backend as soon as it arrives, so concurrent
requests from several clients reach its batcher together.

Each session is a session of the local backend (``ServiceClient.new_session``, owned by a hash of
the API key: :func:`owner_of`), so its runs, samplers and stability records are its own and the
REST calls see what the key created. Training runs are named by the SDK's model ids.

Everything here runs on the server's event loop, except the ``start`` callables (worker threads).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .config import ServerConfig
from .errors import BadRequest, Gone, NotFound, TooManyRequests
from .jobs import Job, JobStore, Reply
from .paths import WIRE

if TYPE_CHECKING:
    from cookbook.backend import LocalSamplingClient as SamplingClient
    from cookbook.backend import LocalServiceClient as ServiceClient
    from cookbook.backend import LocalTrainingClient as TrainingClient

T = TypeVar("T")
# worker thread: the model's local training client (None while creating it) -> a value or an APIFuture
Start = Callable[[Any], object]
Finish = Callable[[Any], Reply]  # event loop: the backend's result (its type is the request's) -> the reply

_SEEN_PER_MODEL = 4096  # recent seq ids remembered per model, so a re-sent request gets its first job back
_ENDED_SESSIONS = 10_000  # ended session ids remembered, so their heartbeats get 410 (the SDK stops)
_REMEMBERED_COPIES = 10_000  # copy_weights replies by idempotency key, so a retried copy is not made twice


@dataclass
class _Op:
    job: Job
    start: Start
    finish: Finish


class TrainingModel:
    """One training run (a LoRA adapter on the backend); see the module docstring for the ordering."""

    def __init__(self, state: ServerState, model_id: str, session_id: str, kind: str, create: Start,
                 finish: Finish) -> None:
        self.model_id, self.session_id = model_id, session_id
        self.owner = state.sessions[session_id].key
        self.client: TrainingClient | None = None  # the local backend's training client, once created
        self.creation_error: BaseException | None = None
        self._state = state
        self._created = asyncio.Event()
        self._next = 0
        self._pending: dict[int, _Op] = {}
        self._seen: dict[int, Job] = {}
        self._wake = asyncio.Event()
        self.creation_job = self._add(0, kind, create, finish)
        self._task = asyncio.get_running_loop().create_task(self._dispatch())

    def enqueue(self, seq_id: int | None, kind: str, start: Start, finish: Finish) -> Job:
        """Accept request ``seq_id``; it runs after every lower seq id. A seq id seen before returns its job."""
        if seq_id is None or seq_id < 1:
            raise BadRequest(f"{kind} for {self.model_id} needs a seq_id >= 1, got {seq_id}")
        if seq_id in self._seen:
            return self._seen[seq_id]
        if seq_id < self._next:
            raise BadRequest(f"seq_id {seq_id} of {self.model_id} has already run (the next one is {self._next})")
        if seq_id > self._next + self._state.config.max_seq_ahead:
            raise BadRequest(f"seq_id {seq_id} of {self.model_id} is out of range (the next one is {self._next})")
        self._state.check_queue(self.owner)
        if seq_id - 1 not in self._seen:
            self._state.stats["arrived_early"] += 1  # it waits for a lower seq id that has not arrived yet
        return self._add(seq_id, kind, start, finish)

    def _add(self, seq_id: int, kind: str, start: Start, finish: Finish) -> Job:
        job = self._state.jobs.new(kind, self.owner)
        self._pending[seq_id] = _Op(job, start, finish)
        self._seen[seq_id] = job
        while len(self._seen) > _SEEN_PER_MODEL:
            del self._seen[next(iter(self._seen))]
        self._wake.set()
        return job

    @property
    def alive(self) -> bool:
        """Being created or created: it holds (or is about to hold) backend memory."""
        return not self._created.is_set() or self.client is not None

    async def ready(self) -> TrainingClient:
        """The local training client, once the model is created (raises if creating it failed)."""
        await self._created.wait()
        if self.client is None:
            raise BadRequest(f"creating {self.model_id} failed: {self.creation_error}")
        return self.client

    async def _dispatch(self) -> None:
        while True:
            op = self._pending.pop(self._next, None)
            if op is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._next += 1
            try:
                await self._run(op)
            except asyncio.CancelledError:
                self._state.jobs.fail(op.job, Gone(f"{self.model_id} was closed while this request was submitted"))
                raise
            except Exception as exc:  # noqa: BLE001 - never stall the model's queue
                self._state.jobs.fail(op.job, exc)

    async def _run(self, op: _Op) -> None:
        creating = not self._created.is_set()
        if not creating and self.client is None:
            self._state.jobs.fail(op.job, BadRequest(f"creating {self.model_id} failed: {self.creation_error}"))
            return
        error: Exception | None = None
        try:
            value = await self._state.run_blocking(op.start, self.client)
        except Exception as exc:  # noqa: BLE001 - the request's failure (the backend rejected it at submission)
            value, error = None, exc
        if creating:  # the creation request's value is the model's training client
            self.client, self.creation_error = cast("TrainingClient | None", value), error
            self._created.set()
        if error is not None:
            self._state.jobs.fail(op.job, error)
        else:
            self._state.jobs.complete(op.job, value, op.finish)

    def close(self, reason: str) -> None:
        """Stop dispatching; requests not yet handed to the backend fail with ``reason``."""
        self._task.cancel()
        for op in self._pending.values():
            self._state.jobs.fail(op.job, Gone(reason))
        self._pending.clear()
        if not self._created.is_set():
            self.creation_error = Gone(reason)
            self._created.set()


def model_id_of(session_id: str, model_seq_id: int) -> str:
    """The SDK's training-model id (it computes the same string itself when creating from a checkpoint)."""
    return f"{session_id}:train:{model_seq_id}"


@dataclass
class Sampler:
    sampler_id: str
    session_id: str
    client: SamplingClient  # the local backend's sampling client
    base_model: str
    model_path: str | None  # the tinker:// path it was created from (None: base model or a snapshot)


def owner_of(key: str) -> str:
    """The owner of what an API key creates (runs, checkpoints, sessions): a hash, never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class Session:
    session_id: str
    key: str = ""  # the API key that created it: the owner of its models, samplers and requests
    backend: Any = None  # the local backend's session (a ServiceClient sharing the server's engine)
    last_seen: float = field(default_factory=time.monotonic)
    models: dict[int, TrainingModel] = field(default_factory=dict)
    samplers: dict[int, str] = field(default_factory=dict)  # sampling_session_seq_id -> sampler id


class ServerState:
    """Everything the server holds; one per app, used only from its event loop."""

    def __init__(self, service: ServiceClient, config: ServerConfig) -> None:
        self.service, self.config = service, config
        self.jobs = JobStore(ttl_s=config.future_ttl_s)
        self.executor = ThreadPoolExecutor(config.threads, thread_name_prefix="tinker-server")
        self.sessions: dict[str, Session] = {}
        self.models: dict[str, TrainingModel] = {}
        self.samplers: dict[str, Sampler] = {}
        self.pending_samples = 0
        self.stats = {"arrived_early": 0}
        self._ended: dict[str, None] = {}
        self._quota_lock = threading.Lock()
        self._training_bytes: dict[tuple[str, str], int] = {}  # (key, model id) -> LoRA training bytes
        self.file_secret = secrets.token_bytes(32)  # signs external-weights download links (per process)
        self.copies: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (key, idempotency key) -> copy_weights reply

    def remember_copy(self, key: tuple[str, str], reply: Any) -> None:
        self.copies[key] = reply
        while len(self.copies) > _REMEMBERED_COPIES:
            self.copies.popitem(last=False)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (every call into the backend goes through here)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # --- sessions -----------------------------------------------------------------------
    def create_session(self, key: str = "", *, user_metadata: dict[str, str] | None = None,
                       project_id: str | None = None, display_name: str | None = None) -> str:
        if sum(s.key == key for s in self.sessions.values()) >= self.config.max_sessions_per_key:
            raise TooManyRequests(f"this API key has {self.config.max_sessions_per_key} open sessions "
                                  "(max_sessions_per_key); finish one first")
        session_id = uuid.uuid4().hex
        backend = self.service.new_session(session_id, owner=owner_of(key), user_metadata=user_metadata,
                                           project_id=project_id, display_name=display_name)
        self.sessions[session_id] = Session(session_id, key, backend)
        return session_id

    def rest(self, key: str) -> Any:
        """The local backend's REST calls as ``key``'s owner sees them, with ``tinker://`` paths."""
        return self.service.create_rest_client(owner=owner_of(key), scheme=WIRE)

    # --- per-key quotas -------------------------------------------------------------------
    def _owned(self, key: str) -> list[Session]:
        return [s for s in self.sessions.values() if s.key == key]

    def check_queue(self, key: str) -> None:
        """429 when ``key`` already has ``max_queued_per_key`` requests accepted and not finished."""
        if self.jobs.open_by_owner[key] >= self.config.max_queued_per_key:
            raise TooManyRequests(f"this API key has {self.jobs.open_by_owner[key]} requests in flight "
                                  "(max_queued_per_key); wait for some to finish")

    def check_new_model(self, key: str) -> None:
        models = sum(m.alive for s in self._owned(key) for m in s.models.values())
        if models >= self.config.max_models_per_key:
            raise TooManyRequests(f"this API key has {models} training models (max_models_per_key); "
                                  "end a session to free them")

    def reserve_training_bytes(self, key: str, model_id: str, nbytes: int) -> None:
        """Count a new model's LoRA training state against the key's memory quota, or refuse it (429)
        before it is allocated. Called from worker threads, hence the lock."""
        limit = self.config.max_training_gib_per_key * 2**30
        with self._quota_lock:
            held = sum(n for (k, _), n in self._training_bytes.items() if k == key)
            if held + nbytes > limit:
                raise TooManyRequests(
                    f"a new model needs {nbytes / 2**30:.2f} GiB of LoRA training state; this API key holds "
                    f"{held / 2**30:.2f} of its {self.config.max_training_gib_per_key:g} GiB "
                    "(max_training_gib_per_key)")
            self._training_bytes[(key, model_id)] = nbytes

    def _release_training_bytes(self, key: str, model_id: str) -> None:
        with self._quota_lock:
            self._training_bytes.pop((key, model_id), None)

    def check_new_sampler(self, key: str) -> None:
        count = sum(len(s.samplers) for s in self._owned(key))
        if count >= self.config.max_samplers_per_key:
            raise TooManyRequests(f"this API key has {count} sampling sessions (max_samplers_per_key); "
                                  "end a session to free them")

    def session(self, session_id: str) -> Session:
        """The live session (its idle clock restarts); 410 for an ended one, 404 for an unknown one."""
        session = self.sessions.get(session_id)
        if session is None:
            if session_id in self._ended:
                raise Gone(f"session {session_id!r} has ended")
            raise NotFound(f"unknown session_id {session_id!r}")
        session.last_seen = time.monotonic()
        return session

    def end_session(self, session_id: str, reason: str, finished: str | None = None) -> None:
        """Forget a session's models and samplers (their checkpoints stay on disk); ``finished``: the
        client's own reason (``success`` / ``errored`` / ``interrupted``), else the session was cancelled."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        if session.backend is not None:  # a backend session: its registry entry records how it ended
            registry = self.service.registry.sessions
            if finished is not None:
                registry.finish(session_id, finished, reason)
            else:
                registry.end(session_id, {"type": "cancelled", "detail": reason})
        for model in session.models.values():
            model.close(f"session {session_id} ended ({reason})")
            self.models.pop(model.model_id, None)
            self._release_training_bytes(session.key, model.model_id)
        for sampler_id in session.samplers.values():
            self.samplers.pop(sampler_id, None)
        self._ended[session_id] = None
        while len(self._ended) > _ENDED_SESSIONS:
            del self._ended[next(iter(self._ended))]

    # --- training models ----------------------------------------------------------------
    def create_model(self, session_id: str, model_seq_id: int, kind: str, create: Start,
                     finish: Finish) -> tuple[Job, str]:
        """A new training model ``<session>:train:<model_seq_id>`` made by ``create`` (its request 0)."""
        session = self.session(session_id)
        if model_seq_id < 0:
            raise BadRequest(f"model_seq_id must be >= 0, got {model_seq_id}")
        model_id = model_id_of(session_id, model_seq_id)
        existing = session.models.get(model_seq_id)
        if existing is not None:  # a re-sent creation request
            return existing.creation_job, model_id
        self.check_new_model(session.key)
        self.check_queue(session.key)
        model = TrainingModel(self, model_id, session_id, kind, create, finish)
        session.models[model_seq_id] = model
        self.models[model_id] = model
        return model.creation_job, model_id

    def model(self, model_id: str) -> TrainingModel:
        model = self.models.get(model_id)
        if model is None:
            raise NotFound(f"unknown model_id {model_id!r} (never created, or its session has ended)")
        self.session(model.session_id)
        return model

    def submit(self, model_id: str, seq_id: int | None, kind: str, start: Start, finish: Finish) -> Job:
        """Queue request ``seq_id`` of a model: ``start(training_client)`` runs after all lower seq ids."""
        return self.model(model_id).enqueue(seq_id, kind, start, finish)

    # --- samplers -----------------------------------------------------------------------
    def add_sampler(self, session_id: str, seq_id: int, client: SamplingClient, base_model: str,
                    model_path: str | None) -> str:
        session = self.session(session_id)
        self.check_new_sampler(session.key)
        sampler_id = f"{session_id}:sample:{seq_id}"
        session.samplers[seq_id] = sampler_id
        self.samplers[sampler_id] = Sampler(sampler_id, session_id, client, base_model, model_path)
        return sampler_id

    def sampler(self, sampler_id: str) -> Sampler:
        sampler = self.samplers.get(sampler_id)
        if sampler is None:
            raise NotFound(f"unknown sampling_session_id {sampler_id!r} (never created, or its session has ended)")
        self.session(sampler.session_id)
        return sampler

    def sample(self, sampler: Sampler, start: Callable[[], object], finish: Finish) -> Job:
        """Hand a sampling request to the backend now; 429 (the SDK backs off) when too many are in flight."""
        if self.pending_samples >= self.config.max_pending_samples:
            raise TooManyRequests(f"{self.pending_samples} sampling requests in flight; retry shortly")
        owner = self.sessions[sampler.session_id].key
        self.check_queue(owner)
        job = self.jobs.new("Sample", owner)
        self.pending_samples += 1

        async def run() -> None:
            try:
                value = await self.run_blocking(start)
                await self.jobs.settle(job, value, finish)
            except Exception as exc:  # noqa: BLE001 - rejected at submission
                self.jobs.fail(job, exc)
            finally:
                self.pending_samples -= 1
        self.jobs.spawn(run())
        return job

    # --- housekeeping -------------------------------------------------------------------
    def sweep(self) -> None:
        """Drop expired results and close sessions idle for longer than the session timeout."""
        self.jobs.sweep()
        now = time.monotonic()
        for session_id in [s.session_id for s in self.sessions.values()
                           if now - s.last_seen > self.config.session_timeout_s]:
            self.end_session(session_id, "no heartbeat")

    async def close(self) -> None:
        for session_id in list(self.sessions):
            self.end_session(session_id, "server shutting down")
        await self.jobs.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
