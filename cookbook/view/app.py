"""The viewer's web app (FastAPI): the page, its script and styles, plotly's JavaScript, and the JSON endpoints.

    GET /                                  the page (static/index.html)
    GET /static/{app.js,style.css,plotly.min.js}
    GET /api/index                         the sources found, with their warnings
    GET /api/metrics?id=&since=N           metrics.jsonl rows from row N on (the page polls this)
    GET /api/run?id=                       config, summary, checkpoints, log tail, file names
    GET /api/episodes?id=                  the logged RL steps; /api/episodes/step?id=&step= one step
    GET /api/datums?id=&offset=&count=&score=   SFT / DPO examples with their weights (cookbook.view.datums)
    GET /api/eval?id=, /api/sweep?id=      an eval's samples and summary, a sweep's table
    GET /api/file?id=&path=                a file inside a source's directory, nothing outside it

Read-only: every route is a GET and nothing is written. A missing source, step or file is a 404 with
``{"error": ...}``; a bug is a 500 with the same shape, which the page shows rather than going blank.
plotly's JavaScript is served from the installed ``plotly`` package: the page needs no network.

May import ``cookbook.view.api``, ``cookbook.view.store``, fastapi/starlette and plotly's package data.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from cookbook.view.api import NotFound, ViewData

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
TEXT_SUFFIXES = {".txt", ".json", ".jsonl", ".csv", ".md", ".log", ".toml", ".yaml", ".yml"}
log = logging.getLogger(__name__)


def plotly_js() -> Path:
    """plotly.js as shipped inside the ``plotly`` Python package (no CDN)."""
    path = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
    return Path(str(path))


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content).encode()


def create_app(data: ViewData, *, poll_seconds: float = 2.0) -> FastAPI:
    app = FastAPI(title="cookbook view", docs_url=None, redoc_url=None, openapi_url=None)
    page = (STATIC / "index.html").read_text()
    settings = dumps({"poll_ms": int(poll_seconds * 1000)})

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Json:
        return Json({"error": str(exc)}, status_code=404)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Json:
        log.exception("cookbook view: %s failed", request.url.path)
        return Json({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    @app.get("/")
    def index_page() -> Response:
        return Response(page.replace("/*SETTINGS*/null", settings), media_type="text/html")

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        if name == "plotly.min.js":
            return FileResponse(plotly_js(), media_type="text/javascript")
        if name not in ASSETS:
            raise NotFound(f"no asset {name!r}")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    @app.get("/api/index")
    def index() -> Json:
        return Json(data.index())

    @app.get("/api/metrics")
    def metrics(id: str, since: int = 0) -> Json:
        return Json(data.metrics(id, since))

    @app.get("/api/run")
    def run(id: str) -> Json:
        return Json(data.run(id))

    @app.get("/api/episodes")
    def episodes(id: str) -> Json:
        return Json(data.episodes(id))

    @app.get("/api/episodes/step")
    def episode_step(id: str, step: int) -> Json:
        return Json(data.episode_step(id, step))

    @app.get("/api/datums")
    def datums(id: str, offset: int = 0, count: int = 10, score: str | None = None) -> Json:
        return Json(data.datums(id, offset, count, score))

    @app.get("/api/eval")
    def eval_(id: str) -> Json:
        return Json(data.eval(id))

    @app.get("/api/sweep")
    def sweep(id: str) -> Json:
        return Json(data.sweep(id))

    @app.get("/api/file")
    def file(id: str, path: str) -> Response:
        source = data.source(id)
        found = data.store.file(source, path)
        if found is None:
            raise NotFound(f"no file {path!r} in {source.name} (only files inside the viewed directories are served)")
        if found.suffix.lower() == ".png":
            return FileResponse(found, media_type="image/png")
        if found.suffix.lower() in TEXT_SUFFIXES:
            return FileResponse(found, media_type="text/plain; charset=utf-8")
        return FileResponse(found, media_type="application/octet-stream")

    @app.get("/{rest:path}")
    def unknown(rest: str) -> Json:
        raise NotFound(f"no page /{rest}")

    return app
