"""The cookbook: composable pieces and generic loops over the Tinker primitives.

``cookbook.service_client()`` is the one entry point to a backend; see :mod:`cookbook.backend`.

The shared layer every loop builds on:

- ``run``: the run skeleton every loop's ``train()`` uses (run directory, start/resume, hooks,
  logging, progress, checkpoints, the final save and the ``RunResult``); sub-runs and summaries;
- ``config``: chz sections every loop config composes (``RunConfig``, ``OptimizerConfig``,
  ``LoopConfig``) and ``make_service``;
- ``primitives``: the client protocols (the seam) and ``ready`` for both client styles;
- ``hooks``: "every N steps, with a client -> metrics" (test NLL, task accuracy, ...);
- ``completers``: the one sampling path (sampler of a checkpoint or base model, renderer for a
  model, token and message completers);
- ``rows``: the one reader of data files and hub datasets;
- ``tasks``: problem sets that serve SFT data, RL rewards and eval accuracy;
- ``checkpointing``: start or resume a training client from the run directory, save checkpoints;
- ``pipeline``, ``seeds``, ``datums``: pipelined steps, derived seeds, next-token datums;
- ``errors``: ``UserError`` and friends, reported by the command line in one line;
- ``run_dir``, ``metric_logger``, ``progress``, ``lr_schedules``, ``recipe_cli``,
  ``tokenizer_utils``; ``tiny``: the embedded model's assets (a leaf).

Loops live in subpackages (``supervised``, ...), each with ``types.py`` (what a user provides)
beside ``train.py``. ``cookbook`` never imports ``recipes`` or ``evals``; loops never import each
other (on-policy distillation imports the RL loop it configures) or a backend
(``tests/test_import_graph.py`` checks the rules).
"""

from .backend import service_client

__all__ = ["service_client"]
