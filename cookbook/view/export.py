"""``cookbook view ... --export report.html``: everything the page shows, in one self-contained file.

The page, its styles, its script and plotly.js are inlined, and every endpoint answer the page asks
for (index, metrics, runs, episodes of every logged step, the first datums, evals, sweeps) is
embedded as JSON keyed by the URL the page would fetch, so the file opens anywhere, offline, with
no server. It is a snapshot: no live refresh, no raw files, no scoring.

May import ``cookbook.view.api`` and ``cookbook.view.app``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cookbook.view.api import ViewData
from cookbook.view.app import STATIC, dumps, plotly_js

DATUMS_PER_RUN = 10


def url(endpoint: str, **params: Any) -> str:
    """The URL the page builds (``apiUrl`` in app.js: parameters in order, encodeURIComponent-style)."""
    query = "&".join(f"{k}={quote(str(v), safe=chr(33) + chr(39) + '()*')}" for k, v in params.items()
                     if v is not None and v != "")
    return f"/api/{endpoint}" + (f"?{query}" if query else "")


def answers(data: ViewData) -> dict[str, Any]:
    """Every answer the page may ask for, keyed by its URL."""
    index = data.index()
    out: dict[str, Any] = {url("index"): index}
    for source in index["sources"]:
        sid = source["id"]
        if source["kind"] == "run":
            out[url("metrics", id=sid, since=0)] = data.metrics(sid, 0)
            out[url("run", id=sid)] = data.run(sid)
            episodes = data.episodes(sid)
            out[url("episodes", id=sid)] = episodes
            for step in episodes["steps"]:
                out[url("episodes/step", id=sid, step=step["step"])] = data.episode_step(sid, step["step"])
            if source.get("datums"):
                out[url("datums", id=sid, offset=0, count=DATUMS_PER_RUN)] = data.datums(sid, 0, DATUMS_PER_RUN)
        elif source["kind"] == "eval":
            out[url("eval", id=sid)] = data.eval(sid)
        else:
            out[url("sweep", id=sid)] = data.sweep(sid)
    out["_created"] = time.strftime("%Y-%m-%d %H:%M")
    return out


def _script(text: str) -> str:
    return "<script>" + text.replace("</script", "<\\/script") + "</script>"


def export(data: ViewData, path: str | Path) -> Path:
    """Write the report to ``path``; returns it."""
    page = (STATIC / "index.html").read_text()
    inline = {
        "STYLE": "<style>" + (STATIC / "style.css").read_text() + "</style>",
        "PLOTLY": _script(plotly_js().read_text()),
        "DATA": _script("window.COOKBOOK_EXPORT = " + dumps(answers(data)).replace("</", "<\\/") + ";"),
        "APP": _script((STATIC / "app.js").read_text()),
    }
    for name, text in inline.items():
        page = re.sub(rf"<!--{name}-->.*?<!--/{name}-->", lambda _m, text=text: text, page, flags=re.S)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
