"""Checkpoint files: where they live, what is in them, and exporting them.

Layout under the checkpoint root (``COOKBOOK_CHECKPOINT_ROOT``, default
``~/.cache/cookbook/checkpoints``)::

    <run_id>/weights/<name>/          save_state: adapter + optimizer (resumable)
    <run_id>/sampler_weights/<name>/  save_weights_for_sampler: adapter only

Each holds ``checkpoint.json`` (base model, LoRA config, kind), ``adapter.safetensors`` and, for
training state, ``optimizer.pt``. Paths are returned as ``local://<run_id>/<kind>/<name>``; a
plain filesystem path to such a directory works everywhere a path is accepted.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import errors
from .lora import Adapter, LoraSpec

SCHEME = "local://"
TRAINING, SAMPLER = "weights", "sampler_weights"


def default_root() -> Path:
    root = os.environ.get("COOKBOOK_CHECKPOINT_ROOT")
    if root:
        return Path(root)
    base = os.environ.get("COOKBOOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cookbook")
    return Path(base) / "checkpoints"


@dataclass(frozen=True)
class CheckpointInfo:
    base_model: str
    lora: LoraSpec
    kind: str
    has_optimizer: bool

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "CheckpointInfo":
        d = json.loads(text)
        return cls(d["base_model"], LoraSpec(**d["lora"]), d["kind"], d["has_optimizer"])


def resolve(path: str | os.PathLike, root: Path) -> Path:
    """The directory of a checkpoint given as ``local://...`` or a filesystem path."""
    text = str(path)
    if text.startswith("tinker://"):
        raise errors.CheckpointNotFoundError(
            f"{text} is a checkpoint of the hosted Tinker service; use backend='tinker' to load it")
    directory = root / text[len(SCHEME):] if text.startswith(SCHEME) else Path(os.path.expanduser(text))
    if not (directory / "checkpoint.json").is_file():
        raise errors.CheckpointNotFoundError(f"no checkpoint at {text} (looked for {directory / 'checkpoint.json'})")
    return directory


def read_info(directory: Path) -> CheckpointInfo:
    with _readable(directory / "checkpoint.json"):
        return CheckpointInfo.from_json((directory / "checkpoint.json").read_text())


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


MAX_NAME_BYTES = 128
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def check_name(name: object) -> None:
    """A checkpoint name is a directory name: letters, digits, '.', '_', '-', not starting with '.'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name.encode()) > MAX_NAME_BYTES:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:77] + "...")
        raise errors.InvalidRequestError(
            f"checkpoint name {shown} is not allowed: use 1-{MAX_NAME_BYTES} letters, digits, '.', '_' or '-', "
            "not starting with '.'")


def write(
    root: Path, run_id: str, kind: str, name: str, info: CheckpointInfo, adapter: Adapter,
    optimizer_state: dict | None, overwrite: bool,
) -> str:
    check_name(name)
    target = root / run_id / kind / name
    if target.exists() and not overwrite:
        how = "pass overwrite=True" if kind == TRAINING else "choose another name"
        raise errors.InvalidRequestError(f"checkpoint {SCHEME}{run_id}/{kind}/{name} exists; {how}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=target.parent))
    try:
        save_file({k: v.cpu().contiguous() for k, v in adapter.state_dict().items()}, tmp / "adapter.safetensors")
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / "optimizer.pt")
        (tmp / "checkpoint.json").write_text(info.to_json())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{SCHEME}{run_id}/{kind}/{name}"


def load_adapter_weights(directory: Path) -> dict[str, torch.Tensor]:
    with _readable(directory / "adapter.safetensors"):
        return load_file(directory / "adapter.safetensors")


def load_optimizer_state(directory: Path) -> dict:
    file = directory / "optimizer.pt"
    if not file.is_file():
        raise errors.CheckpointNotFoundError(f"{directory} holds no optimizer state (it is a sampler checkpoint)")
    with _readable(file):
        return torch.load(file, map_location="cpu", weights_only=True)
