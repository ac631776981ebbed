"""Checkpoint files: where they live, what is in them, their metadata.

Layout under the checkpoint root (``COOKBOOK_CHECKPOINT_ROOT``, default
``~/.cache/cookbook/checkpoints``)::

    <run_id>/run.json                  the training run (``registry.py``)
    <run_id>/weights/<name>/           save_state: weights + optimizer (resumable)
    <run_id>/sampler_weights/<name>/   save_weights_for_sampler: weights only
    <run_id>/external_weights/<name>/  save_weights_external: a Hugging Face directory (PEFT adapter
                                       for LoRA, the whole model for full fine-tuning)

Each holds ``checkpoint.json`` (:class:`CheckpointInfo`: base model, LoRA config or none for full
fine-tuning, optimizer family, creation time, user metadata, expiry, public flag) and the weights:
``adapter.safetensors`` (LoRA) or ``model.safetensors`` (full fine-tuning), plus ``optimizer.pt``
for training state. Paths are returned as ``local://<run_id>/<kind>/<name>``; a plain filesystem
path to such a directory works everywhere a path is accepted. A checkpoint past its
``expires_at`` (``ttl_seconds``) is deleted the next time it is looked up or listed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import errors
from .lora import LoraSpec

SCHEME = "local://"
TRAINING, SAMPLER, EXTERNAL = "weights", "sampler_weights", "external_weights"
KINDS = (TRAINING, SAMPLER, EXTERNAL)
KIND_TYPES = {TRAINING: "training", SAMPLER: "sampler", EXTERNAL: "external"}  # tinker's CheckpointType
INFO_FILE = "checkpoint.json"
LORA_FILE, FULL_FILE, OPTIMIZER_FILE = "adapter.safetensors", "model.safetensors", "optimizer.pt"
TTL_MIN_S, TTL_MAX_S = 3600, 10 * 366 * 24 * 3600  # the SDK's bounds: 1 hour to 10 years


def default_root() -> Path:
    root = os.environ.get("COOKBOOK_CHECKPOINT_ROOT")
    if root:
        return Path(root)
    base = os.environ.get("COOKBOOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cookbook")
    return Path(base) / "checkpoints"


@dataclass(frozen=True)
class CheckpointInfo:
    base_model: str
    lora: LoraSpec | None  # None: full fine-tuning (every weight of the model is in the checkpoint)
    kind: str
    has_optimizer: bool
    optimizer: str = "adamw"
    created_at: float = 0.0  # seconds since the epoch
    user_metadata: dict[str, str] | None = None
    expires_at: float | None = None
    public: bool = False

    @property
    def weights_file(self) -> str:
        return LORA_FILE if self.lora is not None else FULL_FILE

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> CheckpointInfo:
        d = json.loads(text)
        lora = LoraSpec(**d["lora"]) if d.get("lora") else None
        return cls(d["base_model"], lora, d["kind"], d["has_optimizer"], d.get("optimizer", "adamw"),
                   float(d.get("created_at", 0.0)), d.get("user_metadata"), d.get("expires_at"),
                   bool(d.get("public", False)))


def parse(path: str) -> tuple[str, str, str] | None:
    """``(run_id, kind, name)`` of a ``local://`` path; None for a filesystem path."""
    if not str(path).startswith(SCHEME):
        return None
    parts = str(path)[len(SCHEME):].split("/")
    if len(parts) != 3 or parts[1] not in KINDS or any(p in ("", ".", "..") for p in parts):
        raise errors.CheckpointNotFoundError(
            f"bad checkpoint path {path!r}: expected local://<run>/<weights|sampler_weights|external_weights>/<name>")
    return parts[0], parts[1], parts[2]


def resolve(path: str | os.PathLike, root: Path) -> Path:
    """The directory of a checkpoint given as ``local://...`` or a filesystem path (not expired)."""
    text = str(path)
    if text.startswith("tinker://"):
        raise errors.CheckpointNotFoundError(
            f"{text} is a checkpoint of the hosted Tinker service; use backend='tinker' to load it")
    parsed = parse(text)
    directory = root.joinpath(*parsed) if parsed else Path(os.path.expanduser(text))
    if not (directory / INFO_FILE).is_file():
        raise errors.CheckpointNotFoundError(f"no checkpoint at {text} (looked for {directory / INFO_FILE})")
    if expired(directory):
        raise errors.CheckpointNotFoundError(f"checkpoint {text} has expired (its ttl_seconds ran out)")
    return directory


def read_info(directory: Path) -> CheckpointInfo:
    with _readable(directory / INFO_FILE):
        return CheckpointInfo.from_json((directory / INFO_FILE).read_text())


@contextlib.contextmanager
def _readable(file: Path) -> Iterator[None]:
    """A checkpoint file that exists but cannot be parsed raises :class:`errors.CheckpointCorruptError`."""
    try:
        yield
    except FileNotFoundError:
        raise errors.CheckpointNotFoundError(f"checkpoint file {file} is missing") from None
    except Exception as exc:  # noqa: BLE001 - json, safetensors and torch each raise their own kinds
        raise errors.CheckpointCorruptError(
            f"checkpoint file {file} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None


_LEGACY_AGE_S = 3600  # saves of older versions carry no pid: theirs are stale after an hour
_TEMPORARY = re.compile(r"\.(?P<name>.+)-(?P<pid>\d+)-[^-]+")  # a save in progress: .<name>-<pid>-<random>


def remove_stale_saves(root: Path) -> list[Path]:
    """Delete the temporary directories of saves whose process is gone (killed mid-save); returns them.
    A save writes ``<run>/<kind>/.<name>-<pid>-<random>/`` and renames it into place when complete."""
    removed = []
    for tmp in root.glob("*/*/.*"):
        match = _TEMPORARY.fullmatch(tmp.name)
        stale = (not _alive(int(match["pid"]))) if match else time.time() - tmp.stat().st_mtime > _LEGACY_AGE_S
        if tmp.is_dir() and stale:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_info(directory: Path, info: CheckpointInfo) -> None:
    tmp = directory / f".{INFO_FILE}.tmp"
    tmp.write_text(info.to_json())
    os.replace(tmp, directory / INFO_FILE)


def expired(directory: Path, now: float | None = None) -> bool:
    """True (and the checkpoint deleted) when its TTL has run out."""
    try:
        info = read_info(directory)
    except (OSError, ValueError, KeyError):
        return False
    if info.expires_at is None or (now if now is not None else time.time()) < info.expires_at:
        return False
    shutil.rmtree(directory, ignore_errors=True)
    return True


def expiry(ttl_seconds: int | None, now: float | None = None) -> float | None:
    """``expires_at`` for a TTL (None: never); the SDK's bounds are checked."""
    if ttl_seconds is None:
        return None
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not TTL_MIN_S <= ttl_seconds <= TTL_MAX_S:
        raise errors.InvalidRequestError(
            f"ttl_seconds must be None (never expires) or between {TTL_MIN_S} (1 hour) and {TTL_MAX_S} (10 years), "
            f"got {ttl_seconds!r}")
    return (now if now is not None else time.time()) + ttl_seconds


MAX_NAME_BYTES = 128
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def check_name(name: object) -> None:
    """A checkpoint name is a directory name: letters, digits, '.', '_', '-', not starting with '.'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name.encode()) > MAX_NAME_BYTES:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:77] + "...")
        raise errors.InvalidRequestError(
            f"checkpoint name {shown} is not allowed: use 1-{MAX_NAME_BYTES} letters, digits, '.', '_' or '-', "
            "not starting with '.'")


def check_free(root: Path, run_id: str, kind: str, name: str, overwrite: bool) -> None:
    """Refuse, at submission, a name already saved (unless ``overwrite``; expired ones are free)."""
    check_name(name)
    target = root / run_id / kind / name
    if target.exists() and not expired(target) and not overwrite:
        how = "pass overwrite=True" if kind == TRAINING else "choose another name"
        raise errors.InvalidRequestError(f"checkpoint {SCHEME}{run_id}/{kind}/{name} exists; {how}")


def write(
    root: Path, run_id: str, kind: str, name: str, info: CheckpointInfo, weights: dict[str, torch.Tensor],
    optimizer_state: dict | None, overwrite: bool,
) -> str:
    """Write a checkpoint atomically (a half-written one is never visible); its ``local://`` path."""
    def fill(directory: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, directory / info.weights_file)
        if optimizer_state is not None:
            torch.save(optimizer_state, directory / OPTIMIZER_FILE)
    return write_directory(root, run_id, kind, name, info, fill, overwrite=overwrite)


def write_directory(root: Path, run_id: str, kind: str, name: str, info: CheckpointInfo, fill,
                    overwrite: bool = False) -> str:
    """A checkpoint whose files ``fill(directory)`` writes (weights, or an external export), written
    atomically: into ``.<name>-<pid>-<random>`` (what :func:`remove_stale_saves` recognises), renamed
    into place when complete. Its ``local://`` path."""
    check_free(root, run_id, kind, name, overwrite)
    target = root / run_id / kind / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=target.parent))
    try:
        fill(tmp)
        (tmp / INFO_FILE).write_text(replace(info, created_at=info.created_at or time.time()).to_json())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path_of(run_id, kind, name)


def path_of(run_id: str, kind: str, name: str) -> str:
    return f"{SCHEME}{run_id}/{kind}/{name}"


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights: LoRA A/B pairs, or the full model's trainable state."""
    info = read_info(directory)
    file = directory / info.weights_file
    if not file.is_file():
        raise errors.CheckpointNotFoundError(f"{directory} holds no weights ({info.kind} checkpoint)")
    with _readable(file):
        return load_file(file)


def load_adapter_weights(directory: Path) -> dict[str, torch.Tensor]:
    with _readable(directory / LORA_FILE):
        return load_file(directory / LORA_FILE)


def load_optimizer_state(directory: Path) -> dict:
    file = directory / OPTIMIZER_FILE
    if not file.is_file():
        raise errors.CheckpointNotFoundError(f"{directory} holds no optimizer state (it is a sampler checkpoint)")
    with _readable(file):
        return torch.load(file, map_location="cpu", weights_only=True)


def size_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
