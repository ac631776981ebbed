"""Runnable, copyable recipes, one folder per group (``recipes/sl``, ``recipes/rl``), and the ``cookbook`` command
(``recipes/__main__.py``). They may import cookbook, renderers and evals; nothing imports them."""
