"""Preference learning: what a user provides (``types``: :class:`Comparison`), comparison sources and
comparison -> pair of Datums (``data``), the DPO loop (``train``; with ``reference_free`` it trains a
Bradley-Terry reward model) and reward models scored through a sampling client (``reward_model``).

May import the shared layer of ``cookbook`` (``run``, ``config``, ``hooks``, ``pipeline``, ``primitives``,
``completers``, ``rows``, ``datums``, ``seeds``, ``tasks``, ...) and ``renderers``; never ``cookbook.backend`` directly
(clients come through ``cookbook.config.make_service`` and are typed by ``cookbook.primitives``) and
never another loop.
"""
