"""Fixtures of the viewer tests: tiny real runs (built once), a viewer over them, and one headless Chromium.

The browser is Debian's ``chromium`` driven by ``playwright`` (never ``playwright install``: the
browser comes from the system). Without either, the browser tests skip and say what is missing.
``COOKBOOK_VIEW_SCREENSHOTS=DIR`` also copies each view's screenshot there, palette-compressed (the
README's docs/images/ are made so).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from trained_tiny import one_compute_thread
from view_helpers import CHROMIUM_ARGS, POLL_SECONDS, Page, chromium_path

from cookbook.http_server import AppThread
from cookbook.view.api import ViewData
from cookbook.view.app import create_app
from cookbook.view.store import Store


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    from tiny_runs import build

    root = tmp_path_factory.mktemp("view") / "runs"  # shown as runs/sft, runs/rl, ... on the page
    with one_compute_thread():
        build(root)
    return root


@pytest.fixture(scope="session")
def viewer(runs_root):
    with AppThread(create_app(ViewData(Store([runs_root])), poll_seconds=POLL_SECONDS), name="viewer") as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary, or a skip that says what is missing (checked before any run is built)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need the playwright package (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("browser tests need a Chromium binary: apt-get install chromium (or set COOKBOOK_CHROMIUM)")
    return path


@pytest.fixture(scope="package")
def browser(chromium, runs_root):
    """One browser for the package's tests. Package-scoped, and started after the runs are built: while
    playwright's sync API is open its event loop counts as running in this thread, so asyncio.run()
    (the RL rollouts) cannot run here until it is closed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - a browser that cannot start is a missing dependency here
            pytest.skip(f"Chromium at {chromium} did not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, tmp_path_factory):
    page = Page(browser, tmp_path_factory.mktemp("view-screenshots"))
    yield page
    page.context.close()
