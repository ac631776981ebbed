"""Evals: benchmarks, graders, the runner, eval hooks, sweeps and plots.

- ``graders``: answer extraction and comparison (``\\boxed{}``, GSM8K ``####``, LaTeX and sympy),
  shared with RL rewards;
- ``benchmarks/``: one small file per benchmark (a ``cookbook.tasks.Task`` with a prompt format,
  a grader and sampling defaults) and the registry (``get_benchmark``);
- ``responders``: where answers come from (any Tinker sampling client through a renderer, or any
  OpenAI-compatible endpoint); ``runner``: a benchmark through a responder -> per-sample JSONL and
  a summary (accuracy, standard error, pass@k, truncation, tokens), resumable; ``passk``;
- ``hooks``: benchmarks as eval hooks of any training loop (``eval/<benchmark>/<metric>``);
- ``sweeps``: checkpoints x benchmarks -> a table and a plot; ``plots``: training curves;
- ``run``: ``cookbook eval`` / ``python -m evals.run``;
- ``sandbox`` (+ ``sandbox_child``, run by path): untrusted Python in a limited, isolated process;
  ``coding``: code benchmarks graded in it; ``choices``: multiple choice; ``instructions``:
  IFEval-style verifiable instructions;
- ``external``: tasks of other harnesses through the runner: ``inspect_eval`` (``inspect:<task>``;
  ``inspect_model`` is the Inspect model provider) and ``lm_harness`` (``lm_eval:<task>``).

May import ``cookbook`` (the shared layer and the ``cookbook.backend`` factory) and ``renderers``;
never ``recipes``.
"""
