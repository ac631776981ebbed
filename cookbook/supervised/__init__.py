"""Supervised learning: what a user provides (``types``), dataset sources and conversation -> Datum
(``data``), and the loop (``train``).

May import the shared layer of ``cookbook`` (``run``, ``config``, ``hooks``, ``pipeline``, ``primitives``,
``completers``, ``rows``, ``datums``, ``seeds``, ``tasks``, ...) and ``renderers``; never ``cookbook.backend`` directly
(clients come through ``cookbook.config.make_service`` and are typed by ``cookbook.primitives``) and
never another loop.
"""
