"""``cookbook view``: a read-only local web page of run, eval and sweep directories.

- ``store``: finds the directories and reads their files incrementally (malformed lines skipped with
  warnings; no path outside the given directories is ever opened for the page);
- ``api``: what each JSON endpoint answers; ``datums``: SFT / DPO examples rendered with the run's
  renderer and weights (and DPO implicit rewards on request);
- ``app``: the FastAPI app (served by ``cookbook.http_server.AppThread``); ``static/``: the page
  (plain JavaScript, plotly.js from the installed ``plotly`` package);
- ``export``: the one-file HTML report; ``cli``: the command.

Imports the shared layer (``cookbook.errors``, ``cookbook.http_server``), the data helpers of the
supervised and preference packages and ``renderers`` for the datum view, and the backend factory
only to score DPO comparisons on request. No loop imports it.
"""

from cookbook.view.cli import main

__all__ = ["main"]
