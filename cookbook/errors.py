"""Errors a user causes and can fix: bad data, a missing file, a model that cannot be loaded, a bad option.

Raise a :class:`UserError` (or a subclass) with a one-line message that names the file and line,
the option or the model id, and says what to do. The command line (``cookbook ...`` and
``python -m recipes...``) prints such an error as ``error: <message>`` and exits with status 2;
``--debug`` or ``COOKBOOK_DEBUG=1`` shows the traceback instead. Any other exception is a bug and
keeps its traceback.

A leaf: imports nothing of ours (the local backend's typed errors derive from :class:`UserError`).
"""

from __future__ import annotations

import os

DEBUG_ENV = "COOKBOOK_DEBUG"


class UserError(Exception):
    """Something the user can fix; its message is one line that says what and where."""


class ConfigError(UserError, ValueError):
    """A bad option value or an inconsistent combination of options."""


class DataError(UserError, ValueError):
    """A dataset that cannot be read: a malformed file, line or row."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class ModelLoadError(UserError, OSError):
    """A base model or its tokenizer cannot be loaded (unknown id, no network, not a model directory)."""

    @classmethod
    def for_model(cls, model: str, cause: BaseException) -> ModelLoadError:
        reason = first_line(str(cause)) or type(cause).__name__
        return cls(f"cannot load model {model!r}: {reason} (base_model takes 'tiny', a local model directory, or a "
                   "Hugging Face id that is in the local cache or reachable over the network)")


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def debug_from_env() -> bool:
    """True when ``COOKBOOK_DEBUG`` asks for tracebacks of user errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
