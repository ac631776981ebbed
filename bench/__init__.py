"""Benchmarks of the local backend against plain ``transformers`` + ``peft``.

``python -m bench.run`` runs the suite (see ``bench/README.md``). Modules: ``models`` (bench
model directories with random weights), ``inputs`` (fixed-seed workload inputs), ``settings``
(workload sizes), ``ours`` / ``baseline`` (the two sides of every comparison), ``timing``,
``memory``, ``flops``, ``workloads``, ``probe`` (fresh-process memory measurements on CPU),
``report`` (JSON, Markdown and console tables) and ``run`` (the command line).
"""
