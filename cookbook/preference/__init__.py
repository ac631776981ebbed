"""Preference learning (DPO): what a user provides (``types``: :class:`Comparison`), comparison
sources and comparison -> pair of Datums (``data``), and the DPO loop (``train``).

May import the shared layer of ``cookbook`` (``config``, ``hooks``, ``checkpointing``, ``primitives``,
``tasks``, run directory, logging, schedules) and ``renderers``; never ``cookbook.backend`` directly
(clients come through ``cookbook.config.make_service`` and are typed by ``cookbook.primitives``) and
never another loop.
"""
