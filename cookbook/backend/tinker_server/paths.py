"""Checkpoint paths on the wire (``tinker://``) and in the local backend (``local://``).

The local backend stores checkpoints under its checkpoint root as ``<run>/<kind>/<name>`` and
names them ``local://<run>/<kind>/<name>``; the SDK expects ``tinker://<training_run_id>/<kind>/<name>``
(``create_sampling_client`` refuses anything else). The server swaps the scheme and nothing else,
so a path stays valid across server restarts and the two spellings name the same directory. The
``<run>`` segment is the local backend's run directory, not the SDK's model id. Only paths of that
shape are accepted from clients (no filesystem paths, no ``..``): a client cannot make the server
read outside its checkpoint root.
"""

from __future__ import annotations

from cookbook.errors import UserError

WIRE, LOCAL = "tinker://", "local://"
KINDS = ("weights", "sampler_weights", "external_weights")


class CheckpointPathError(UserError, ValueError):
    """A checkpoint path that is not ``tinker://<run>/<weights|sampler_weights|external_weights>/<name>``."""


def to_wire(local_path: str) -> str:
    """``local://run/kind/name`` -> ``tinker://run/kind/name``."""
    if not local_path.startswith(LOCAL):
        raise ValueError(f"the local backend returned an unexpected checkpoint path {local_path!r}")
    return WIRE + local_path[len(LOCAL):]


def to_local(path: str) -> str:
    """A client's ``tinker://`` (or ``local://``) checkpoint path as the local backend's ``local://`` path."""
    if not isinstance(path, str):
        raise CheckpointPathError(f"a checkpoint path must be a string, got {type(path).__name__}")
    scheme = next((s for s in (WIRE, LOCAL) if path.startswith(s)), None)
    parts = path[len(scheme):].split("/") if scheme else []
    if (len(parts) != 3 or parts[1] not in KINDS
            or any(not p or p in (".", "..") or "\\" in p for p in (parts[0], parts[2]))):
        raise CheckpointPathError(
            f"bad checkpoint path {path!r}: expected tinker://<run>/<weights|sampler_weights|external_weights>/<name> "
            "as returned by save_state / save_weights_for_sampler / save_weights_external")
    return LOCAL + "/".join(parts)
