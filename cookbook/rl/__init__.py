"""Reinforcement learning: environments (``types``, ``message_env``, ``task_env``, ``reward_env``: a
reward from any reply scorer such as a reward model), rollouts,
advantages and Datums (``data``), metrics, the episode log and the loop (``train``).

May import the shared layer (``cookbook.run``, ``config``, ``hooks``, ``primitives``, ``completers``,
``seeds``, ``tasks``, ...) and ``renderers``; talks to a backend only through the client
protocols; imports no other loop.
"""
