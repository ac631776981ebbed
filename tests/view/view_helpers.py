"""Helpers of the viewer's browser tests: where Chromium is, how it starts, a page that records errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser",
                       "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
POLL_SECONDS = 0.25


def chromium_path() -> str | None:
    chosen = os.environ.get("COOKBOOK_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


class Page:
    """A fresh page that records console errors and uncaught exceptions, and saves screenshots."""

    def __init__(self, browser, shots: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 820})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []  # every URL the page asked for
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(f"console.error: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        self.shots = shots

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        copy_to = os.environ.get("COOKBOOK_VIEW_SCREENSHOTS")
        if copy_to:  # for the README: a 128-colour palette keeps each image near 30 KB
            from PIL import Image

            Path(copy_to).mkdir(parents=True, exist_ok=True)
            Image.open(path).convert("RGB").quantize(colors=128).save(Path(copy_to) / path.name, optimize=True)
        return path
