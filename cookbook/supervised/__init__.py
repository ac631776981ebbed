"""Supervised learning: dataset sources and conversation -> Datum (``data``) and the loop (``train``).

May import ``cookbook`` (backend factory, run directory, logging, schedules) and ``renderers``;
talks to a backend only through the Tinker client interface.
"""
