"""Typed errors raised by the local backend.

Every error is raised when the request is submitted, before anything is queued, so a rejected
request never touches gradients, weights or optimizer state and the client stays usable.
They are user errors (:class:`cookbook.errors.UserError`): the command line reports them in one line.
"""

from __future__ import annotations

from cookbook import errors as user_errors


class LocalBackendError(user_errors.UserError):
    """Base class of every error the local backend raises on purpose."""


class InvalidRequestError(LocalBackendError, ValueError):
    """The request is malformed (bad shapes, values or arguments)."""


class LengthMismatchError(InvalidRequestError):
    """A per-token loss input does not have the model input's length."""


class UnknownLossError(InvalidRequestError):
    """The loss function name is not one of the built-in losses."""


class MissingLossInputError(InvalidRequestError):
    """A loss function input the loss needs was not given."""


class TokenOutOfVocabularyError(InvalidRequestError):
    """A token id is negative or not smaller than the vocabulary size."""


class ContextLengthExceededError(InvalidRequestError):
    """A sequence (or prompt + max_tokens) is longer than the model's context window."""


class EmptyInputError(InvalidRequestError):
    """A prompt, model input or data list is empty."""


class NonFiniteInputError(InvalidRequestError):
    """A float input contains NaN or infinity."""


class CheckpointNotFoundError(LocalBackendError, FileNotFoundError):
    """No checkpoint exists at the given path."""


class CheckpointCorruptError(LocalBackendError, ValueError):
    """A checkpoint's files exist but cannot be read (cut off by a crash, or not a checkpoint's files)."""


class OptimizerParamsError(LocalBackendError, TypeError):
    """optim_step got parameters of the wrong kind."""


class ModelMismatchError(InvalidRequestError):
    """A checkpoint was made for a different base model or LoRA configuration."""


class ModelLoadError(LocalBackendError, user_errors.ModelLoadError):
    """The base model cannot be loaded (unknown id, hub unreachable, not a model directory)."""


class OutOfMemoryError(InvalidRequestError):
    """A sequence needs more activation memory than the device has free, even with checkpointing."""


class NotFoundError(LocalBackendError, FileNotFoundError):
    """No such training run, session or sampler (or it belongs to another owner)."""


class ConflictError(InvalidRequestError):
    """The request conflicts with the resource's state (publishing a checkpoint that is already public)."""


class UnsupportedError(InvalidRequestError):
    """A Tinker feature this backend cannot provide (the message says why)."""
