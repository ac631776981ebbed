"""``cookbook view`` in headless Chromium, on real tiny runs (tests/view/tiny_runs.py): every view loads
with no console error, curves have one point per metrics row and grow while a run writes, RL episodes
show the file's rewards, datums highlight exactly the weighted tokens, malformed lines are warned
about, and the exported report works from a file with no server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from view_helpers import POLL_SECONDS, Page

from cookbook.http_server import AppThread
from cookbook.view.api import ViewData
from cookbook.view.app import create_app
from cookbook.view.export import export
from cookbook.view.store import Store

TIMEOUT_MS = 30_000


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def points(page, metric: str, run: str) -> list[list[float]]:
    """(x, y) of the raw trace of ``run`` in the chart of ``metric`` ([] when there is none)."""
    return page.page.evaluate("""([metric, run]) => {
        const node = [...document.querySelectorAll('.chart')].find((n) => n.dataset.metric === metric);
        const trace = node && node.data ? node.data.find((t) => t.meta && t.meta.raw && t.meta.run === run) : null;
        return trace ? trace.x.map((x, i) => [x, trace.y[i]]) : [];
    }""", [metric, run])


def wait_points(page, metric: str, run: str, n: int) -> None:
    page.page.wait_for_function("""([metric, run, n]) => {
        const node = [...document.querySelectorAll('.chart')].find((x) => x.dataset.metric === metric);
        const trace = node && node.data ? node.data.find((t) => t.meta && t.meta.raw && t.meta.run === run) : null;
        return trace && trace.x.length === n;
    }""", arg=[metric, run, n], timeout=TIMEOUT_MS)


VIEWS = [  # (screenshot name, URL hash, what must be on the page)
    ("curves", "tab=curves&runs=0/sft,0/rl,0/dpo", '.chart[data-metric="train/loss"] .main-svg'),
    ("run", "tab=run&run=0/sft", "table.checkpoints td"),
    ("episodes", "tab=episodes&run=0/rl&step=1", ".episode[data-reward]"),
    ("datums_sft", "tab=datums&run=0/sft", ".card.datum .tok.w"),
    ("datums_dpo", "tab=datums&run=0/dpo", ".card.comparison .tok.w"),
    ("eval", "tab=evals&eval=0/eval", "tr.sample"),
    ("sweep", "tab=evals&eval=0/sweep", "#sweep-plot .main-svg"),
]


def test_every_view_loads_without_console_errors_and_is_screenshotted(page, viewer):
    for name, where, ready in VIEWS:
        page.page.goto(f"{viewer.url}/#{where}")
        page.page.wait_for_selector(ready, timeout=TIMEOUT_MS)
        page.page.wait_for_timeout(300)  # let plotly finish drawing
        shot = page.screenshot(f"view_{name}")
        assert shot.stat().st_size > 10_000, name
    assert page.page.locator("#warnings").is_hidden()  # nothing malformed in these runs
    assert page.errors == []
    assert {url.split("/")[2] for url in page.requests} == {viewer.url.split("/")[2]}  # no CDN, nothing else
    assert any(url.endswith("/static/plotly.min.js") for url in page.requests)


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_run_view_lists_checkpoints_and_the_difference_between_two_configs(page, viewer, runs_root):
    checkpoints = rows_of(runs_root / "sft" / "checkpoints.jsonl")
    page.page.goto(f"{viewer.url}/#tab=run&run=0/sft")
    page.page.wait_for_selector("table.checkpoints td", timeout=TIMEOUT_MS)
    shown = page.page.eval_on_selector_all("table.checkpoints tr", "rows => rows.slice(1).map((r) => "
                                           "[...r.cells].map((c) => c.querySelector('code')?.textContent || ''))")
    assert [(row[2], row[3]) for row in shown] == [(c["state_path"], c["sampler_path"] or "") for c in checkpoints]
    option = page.page.get_attribute("table.checkpoints tr >> nth=1 >> button >> nth=1", "title")
    assert option == f"load_checkpoint_path={checkpoints[0]['state_path']}"

    page.page.select_option("#compare", "0/rl")
    page.page.wait_for_selector("table.config-diff tr.diff", timeout=TIMEOUT_MS)
    mine, theirs = (flat(json.loads((runs_root / run / "config.json").read_text())) for run in ("sft", "rl"))
    differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    keys = page.page.eval_on_selector_all("table.config-diff tr.diff th", "els => els.map((e) => e.textContent)")
    assert keys == differing and "learning_rate" in keys and "data.source" in keys
    assert page.errors == []


def test_curves_have_one_point_per_metrics_row_and_follow_the_controls(page, viewer, runs_root):
    sft, rl = rows_of(runs_root / "sft" / "metrics.jsonl"), rows_of(runs_root / "rl" / "metrics.jsonl")
    page.page.goto(f"{viewer.url}/#tab=curves&runs=0/sft,0/rl")
    wait_points(page, "train/loss", "0/sft", len(sft))
    assert points(page, "train/loss", "0/sft") == [[r["step"], r["train/loss"]] for r in sft]
    wait_points(page, "reward/mean", "0/rl", len(rl))
    # eval-hook metrics (every eval_every steps) on the same step axis, charted by default
    for metric in ("test/nll", "eval/addition/accuracy"):
        assert points(page, metric, "0/sft") == [[r["step"], r[metric]] for r in sft if metric in r]
        assert len(points(page, metric, "0/sft")) == 2

    page.page.select_option("#x-axis", "time")
    elapsed, total = [], 0.0
    for row in sft:
        total += row["step_time_s"]
        elapsed.append(total)
    page.page.wait_for_function("() => document.querySelector('.chart').layout.xaxis.title.text.startsWith('time')")
    assert [x for x, _ in points(page, "train/loss", "0/sft")] == pytest.approx(elapsed)
    page.page.check("#log-y")
    page.page.wait_for_function("() => document.querySelector('.chart').layout.yaxis.type === 'log'")
    page.page.fill("#smoothing", "0.5")
    page.page.dispatch_event("#smoothing", "input")
    traces = page.page.evaluate("() => document.querySelector('[data-metric=\"train/loss\"]').data.length")
    assert traces == 2  # the raw points (faded) and the smoothed line
    assert len(points(page, "train/loss", "0/sft")) == len(sft)
    assert page.errors == []


def test_rl_view_shows_a_steps_episodes_with_the_rewards_in_the_file(page, viewer, runs_root):
    records = {r["step"]: r for r in rows_of(runs_root / "rl" / "episodes.jsonl")}
    assert sorted(records) == [0, 1, 2]
    record = records[1]
    rewards = [e["reward"] for g in record["groups"] for e in g["episodes"]]
    advantages = [e["advantage"] for g in record["groups"] for e in g["episodes"]]
    assert len(set(rewards)) > 1  # the parity env gives groups a signal

    page.page.goto(f"{viewer.url}/#tab=episodes&run=0/rl&step=1")
    page.page.wait_for_selector(".episode[data-reward]", timeout=TIMEOUT_MS)
    shown = page.page.eval_on_selector_all(".episode[data-reward]", "els => els.map((e) => Number(e.dataset.reward))")
    assert shown == rewards
    texts = page.page.eval_on_selector_all(".episode[data-reward] .advantage", "els => els.map((e) => e.textContent)")
    assert [float(t) for t in texts] == pytest.approx(advantages, abs=1e-4)
    replies = page.page.eval_on_selector_all(".episode[data-reward] .toks:not(.prompt)",
                                             "els => els.map((e) => e.textContent)")
    assert replies == ["".join(t["tokens"]) for g in record["groups"] for e in g["episodes"] for t in e["turns"]]
    # tokens of an episode with a positive advantage are green, negative red
    colours = page.page.eval_on_selector_all(".episode[data-reward]", """els => els.map((e) => {
        const tok = e.querySelector('.tok'); return tok ? getComputedStyle(tok).backgroundColor : ''; })""")
    for advantage, colour in zip(advantages, colours):
        if advantage > 0:
            assert colour.startswith("rgba(34, 160, 80")
        elif advantage < 0:
            assert colour.startswith("rgba(210, 50, 50")

    page.page.fill("#reward-min", "1")
    page.page.dispatch_event("#reward-min", "change")
    page.page.wait_for_function("n => document.querySelectorAll('.episode[data-reward]').length === n",
                                arg=sum(r >= 1 for r in rewards))
    page.page.select_option("#step-select", "2")
    expected = [e["reward"] for g in records[2]["groups"] for e in g["episodes"] if e["reward"] >= 1]
    page.page.wait_for_function("""expected => JSON.stringify([...document.querySelectorAll('.episode[data-reward]')]
        .map((e) => Number(e.dataset.reward))) === JSON.stringify(expected) && location.hash.includes('step=2')""",
                                arg=expected, timeout=TIMEOUT_MS)
    assert page.errors == []


def highlighted(card) -> tuple[list[int], str]:
    indices = card.eval_on_selector_all(".tok.w", "els => els.map((e) => Number(e.dataset.i))")
    text = card.eval_on_selector_all(".tok.w", "els => els.map((e) => e.textContent).join('')")
    return indices, text


def test_datum_view_highlights_exactly_the_weighted_tokens(page, viewer, runs_root):
    from cookbook.supervised.data import DatasetSpec, load_conversations
    from cookbook.tokenizer_utils import get_tokenizer
    from renderers import get_renderer

    tokenizer = get_tokenizer("tiny")
    renderer = get_renderer("tiny", tokenizer)
    conversations = load_conversations(DatasetSpec("addition"), seed=0)[:3]

    page.page.goto(f"{viewer.url}/#tab=datums&run=0/sft")
    page.page.wait_for_selector(".card.datum .tok.w", timeout=TIMEOUT_MS)
    cards = page.page.query_selector_all(".card.datum")
    assert len(cards) == 10
    for card, conversation in zip(cards, conversations):
        model_input, weights = renderer.build_supervised_example(conversation, "all_assistant_messages")
        ids = model_input.to_ints()
        indices, text = highlighted(card)
        assert indices == [i for i, w in enumerate(weights) if w > 0]
        assert text == tokenizer.decode([ids[i] for i in indices])
        assert text == conversation[-1]["content"] + "<|im_end|>"  # the answer and its end-of-turn token
        assert card.eval_on_selector_all(".tok", "els => els.length") == len(ids)
    assert page.errors == []


def test_dpo_datums_highlight_each_completion_and_score_implicit_rewards(page, viewer, runs_root):
    import cookbook
    from cookbook.preference.data import comparisons_to_pairs, load_comparisons
    from cookbook.preference.train import ReferenceLogprobs
    from cookbook.tokenizer_utils import get_tokenizer
    from renderers import get_renderer

    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    comparisons = load_comparisons("addition", seed=0)[:10]
    page.page.goto(f"{viewer.url}/#tab=datums&run=0/dpo")
    page.page.wait_for_selector(".card.comparison .tok.w", timeout=TIMEOUT_MS)
    first = page.page.query_selector(".card.comparison")
    for side in ("chosen", "rejected"):
        completion = getattr(comparisons[0], side)[0]["content"]
        assert highlighted(first.query_selector(f".{side}"))[1] == completion + "<|im_end|>"

    page.page.select_option("#score-checkpoint", "final")
    page.page.click("#score")
    page.page.wait_for_selector(".rewards", timeout=120_000)
    scored = page.page.eval_on_selector_all(".rewards", "els => els.map((e) => [Number(e.dataset.chosen), "
                                            "Number(e.dataset.rejected)])")
    final = next(c for c in rows_of(runs_root / "dpo" / "checkpoints.jsonl") if c["final"])
    beta = json.loads((runs_root / "dpo" / "config.json").read_text())["beta"]
    service = cookbook.service_client("local")
    pairs = comparisons_to_pairs(comparisons, renderer, 1024)
    policy = ReferenceLogprobs(service.create_sampling_client(model_path=final["sampler_path"]), pairs).get(range(10))
    reference = ReferenceLogprobs(service.create_sampling_client(base_model="tiny"), pairs).get(range(10))
    expected = [beta * (p[side] - r[side]) for p, r in zip(policy, reference) for side in (0, 1)]
    assert [x for pair in scored for x in pair] == pytest.approx(expected, abs=1e-5)
    assert page.errors == []


@pytest.fixture()
def growing(runs_root, tmp_path):
    """A viewer over a folder holding a copy of the SFT run cut to its first two metrics rows."""
    run = tmp_path / "live" / "sft"
    shutil.copytree(runs_root / "sft", run)
    rows = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(rows[:2]))
    with AppThread(create_app(ViewData(Store([tmp_path / "live"])), poll_seconds=POLL_SECONDS)) as server:
        yield server, run, rows


def test_a_run_still_writing_grows_and_a_new_run_appears_without_a_reload(page, growing):
    server, run, rows = growing
    page.page.goto(f"{server.url}/#tab=curves&runs=0/sft")
    wait_points(page, "train/loss", "0/sft", 2)
    page.page.evaluate("() => { window.notReloaded = true; }")
    with open(run / "metrics.jsonl", "a") as f:
        f.write(rows[2])
    wait_points(page, "train/loss", "0/sft", 3)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(rows[3])
    wait_points(page, "train/loss", "0/sft", 4)
    assert points(page, "train/loss", "0/sft") == [[r["step"], r["train/loss"]] for r in map(json.loads, rows)]

    other = run.parent / "second"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"base_model": "tiny"}))
    (other / "log.txt").write_text("")
    page.page.wait_for_selector('aside .src[data-id="0/second"]', timeout=TIMEOUT_MS)
    (other / "metrics.jsonl").write_text(rows[0])
    page.page.wait_for_selector('aside .src[data-id="0/second"] >> text=1 rows', timeout=TIMEOUT_MS)
    assert page.page.evaluate("() => window.notReloaded") is True
    page.screenshot("view_live")
    assert page.errors == []


def test_malformed_and_truncated_lines_are_skipped_with_a_visible_warning(page, growing):
    server, run, rows = growing
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "train/loss": oops}\n[1, 2]\n' + rows[3] + '{"step": 4, "train/lo')
    with open(run / "checkpoints.jsonl", "a") as f:
        f.write("not json\n")
    (run / "summary.json").write_text("{broken")
    page.page.goto(f"{server.url}/#tab=curves&runs=0/sft")
    wait_points(page, "train/loss", "0/sft", 3)  # rows 0, 1 and the good row after the bad ones
    warnings = page.page.locator("#warnings")
    assert warnings.is_visible()
    text = warnings.inner_text()
    assert "sft/metrics.jsonl:3: skipped a malformed line" in text
    assert "sft/metrics.jsonl:4: skipped a malformed line (a JSON list, not an object)" in text
    assert "sft/metrics.jsonl:6: the last line is incomplete" in text
    assert "sft/checkpoints.jsonl:3: skipped a malformed line" in text
    assert "sft/summary.json: not readable as JSON" in text
    page.screenshot("view_warnings")
    with open(run / "metrics.jsonl", "a") as f:  # the cut-off line is finished: shown, and its warning goes
        f.write('ss": 1.5}\n')
    wait_points(page, "train/loss", "0/sft", 4)
    page.page.wait_for_function("() => !document.querySelector('#warnings').innerText.includes('incomplete')")

    page.page.goto(f"{server.url}/#tab=run&run=0/sft")
    page.page.wait_for_selector("table.checkpoints td")  # the run view still shows the good records
    assert page.page.locator("table.checkpoints tr").count() == 1 + 2  # the header and the two good records
    assert page.errors == []


def test_the_export_is_one_file_that_works_offline(browser, runs_root, tmp_path):
    out = export(ViewData(Store([runs_root])), tmp_path / "report.html")
    html = out.read_text()
    assert "<script src=" not in html and '<link rel="stylesheet"' not in html
    page = Page(browser, tmp_path)
    requests: list[str] = []
    page.page.on("request", lambda r: requests.append(r.url))
    sft = rows_of(runs_root / "sft" / "metrics.jsonl")
    page.page.goto(out.as_uri() + "#tab=curves&runs=0/sft,0/rl")
    wait_points(page, "train/loss", "0/sft", len(sft))
    for _, where, ready in VIEWS[1:]:
        page.page.goto(out.as_uri() + "#" + where)
        page.page.wait_for_selector(ready, timeout=TIMEOUT_MS)
    time.sleep(0.2)
    assert all(url.startswith("file://") or url.startswith("data:") for url in requests), requests
    assert page.errors == []
    page.context.close()


def test_eval_samples_show_each_response_and_grade_and_the_sweep_table_sorts(page, viewer, runs_root):
    samples = rows_of(runs_root / "eval" / "results.jsonl")
    page.page.goto(f"{viewer.url}/#tab=evals&eval=0/eval")
    page.page.wait_for_selector("tr.sample", timeout=TIMEOUT_MS)
    cells = page.page.eval_on_selector_all("tr.sample",
                                           "rows => rows.map((r) => [...r.cells].map((c) => c.textContent))")
    assert [(c[0], c[3], c[4], c[6].startswith("✓")) for c in cells] == [
        (s["id"], s["reference"], s["response"], s["correct"]) for s in samples]

    page.page.goto(f"{viewer.url}/#tab=evals&eval=0/sweep")
    page.page.wait_for_selector("table.sweep tr.sweep-row", timeout=TIMEOUT_MS)

    def steps() -> list[str]:
        return page.page.eval_on_selector_all("tr.sweep-row", "rows => rows.map((r) => r.cells[2].textContent)")
    assert steps() == ["2", "4"]  # results.csv order
    page.page.click('th[data-key="step"]')
    page.page.wait_for_selector('th.sorted-asc[data-key="step"]')
    assert steps() == ["2", "4"]
    page.page.click('th[data-key="step"]')
    page.page.wait_for_selector('th.sorted-desc[data-key="step"]')
    assert steps() == ["4", "2"]
    page.page.click("tr.sweep-row >> nth=0 >> a")  # a score opens its cell's samples
    page.page.wait_for_selector("tr.sample", timeout=TIMEOUT_MS)
    assert page.page.locator("tr.sample").count() == 6
    assert page.errors == []
