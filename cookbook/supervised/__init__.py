"""Supervised learning: what a user provides (``types``), dataset sources and conversation -> Datum
(``data``), and the loop (``train``).

May import the shared layer of ``cookbook`` (``config``, ``hooks``, ``checkpointing``, ``primitives``,
``tasks``, run directory, logging, schedules) and ``renderers``; never ``cookbook.backend`` directly
(clients come through ``cookbook.config.make_service`` and are typed by ``cookbook.primitives``) and
never another loop.
"""
