"""The viewer without a browser: incremental JSONL reading with warnings, finding run / eval / sweep
directories, no file outside the given directories served (``..``, absolute paths, links), every
endpoint answering (never a 500) on broken files, and the command line."""

from __future__ import annotations

import json
import os
import socket

import httpx
import pytest

from cookbook.errors import ConfigError, MissingFileError
from cookbook.http_server import AppThread
from cookbook.view.api import ViewData
from cookbook.view.app import create_app
from cookbook.view.cli import parse
from cookbook.view.store import JsonlFile, Store, classify
from recipes.__main__ import main as cookbook_main


def test_jsonl_reads_only_new_lines_and_warns_about_bad_ones(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n')
    file = JsonlFile(path, "run/metrics.jsonl")
    assert file.refresh().items == [{"step": 0}] and file.warnings == []
    with open(path, "a") as f:
        f.write('{"step": 1}\nnot json\n\n7\n{"step": 2, "lo')
    file.refresh()
    assert file.items == [{"step": 0}, {"step": 1}]
    assert file.warnings == ["run/metrics.jsonl:3: skipped a malformed line (Expecting value)",
                             "run/metrics.jsonl:5: skipped a malformed line (a JSON int, not an object)",
                             "run/metrics.jsonl:6: the last line is incomplete (being written, or cut off); "
                             "not shown until it ends"]
    with open(path, "a") as f:
        f.write('ss": 1}\n')
    file.refresh()
    assert file.items[-1] == {"step": 2, "loss": 1} and len(file.warnings) == 2
    assert file.read_line(2) == {"step": 2, "loss": 1}
    path.write_text('{"step": 0}\n')  # rewritten shorter (a resume drops the steps it runs again)
    assert file.refresh().items == [{"step": 0}] and file.warnings == []
    path.write_text('{"step": 9}\n')  # same size, different content
    assert file.refresh().items == [{"step": 9}]
    path.unlink()
    assert file.refresh().items == []


def make_run(path, rows=2, **files):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"base_model": "tiny", "learning_rate": 1e-3}))
    (path / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "train/loss": 1.0 / (i + 1)}) + "\n"
                                                for i in range(rows)))
    for name, text in files.items():
        (path / name.replace("__", ".")).write_text(text)
    return path


def test_sources_are_found_below_the_given_folders(tmp_path):
    make_run(tmp_path / "runs" / "a")
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "config.json").write_text("{}")
    (tmp_path / "runs" / "b" / "log.txt").write_text("")  # a run that has just started
    (tmp_path / "runs" / "eval").mkdir()
    (tmp_path / "runs" / "eval" / "results.jsonl").write_text("")
    cell = tmp_path / "runs" / "sweep" / "cells" / "a" / "final" / "addition"
    cell.mkdir(parents=True)
    (cell / "results.jsonl").write_text("")
    (tmp_path / "runs" / "sweep" / "results.csv").write_text("run,checkpoint,step,path,addition,addition_stderr\n")
    (tmp_path / "runs" / "notes").mkdir()
    store = Store([tmp_path / "runs"])
    found = {s.id: s.kind for s in store.sources()}
    assert found == {"0/a": "run", "0/b": "run", "0/eval": "eval", "0/sweep": "sweep",
                     "0/sweep/cells/a/final/addition": "eval"}
    assert classify(tmp_path / "runs" / "notes") is None
    assert [s.name for s in Store([tmp_path / "runs" / "a"]).sources()] == ["a"]
    with pytest.raises(MissingFileError, match="no such directory"):
        Store([tmp_path / "missing"])


@pytest.fixture()
def served(tmp_path):
    """A viewer over ``tmp_path/runs`` (one good run, one with broken files); a secret file beside it."""
    root = tmp_path / "runs"
    good = make_run(root / "good", log__txt="started\n")
    make_run(root / "broken", metrics__jsonl='{"step": 0, "train/loss": NaN}\n{"step": 1,\n\x00\x01\n[]\n{"step"',
             config__json="[1, 2]", summary__json="{oops", checkpoints__jsonl='{"name": "final"}\nxx\n',
             episodes__jsonl='{"step": 0, "groups": []}\n{"step": 1, "groups": [{"episodes": [{"reward": "x"}]}]}\n'
                             '{"step": 2, "gro')
    (root / "broken" / "results.csv").write_text("run,checkpoint\nonly-one-field\n")  # not a sweep: no cells/
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    os.symlink(tmp_path / "secret.txt", good / "link.txt")
    os.symlink(tmp_path, good / "outside")
    with AppThread(create_app(ViewData(Store([root])))) as server:
        yield server, good


def test_no_file_outside_the_given_folders_can_be_read(served, tmp_path):
    server, good = served
    client = httpx.Client(base_url=server.url)
    ok = client.get("/api/file", params={"id": "0/good", "path": "log.txt"})
    assert ok.status_code == 200 and ok.text == "started\n"
    attempts = ["../../secret.txt", "../good/../../secret.txt", str(tmp_path / "secret.txt"), "/etc/passwd",
                "link.txt", "outside/secret.txt", "..", ".", "", "./../secret.txt", "..\\..\\secret.txt",
                "%2e%2e/%2e%2e/secret.txt", "log.txt\x00"]
    for path in attempts:
        response = client.get("/api/file", params={"id": "0/good", "path": path})
        assert response.status_code in (404, 422), path
        assert "TOP SECRET" not in response.text and "root:" not in response.text
    for source_id in ("0/..", "0/../..", "0/good/../..", "/etc", "1/good", "0/good/outside"):
        response = client.get("/api/file", params={"id": source_id, "path": "secret.txt"})
        assert response.status_code == 404 and "TOP SECRET" not in response.text, source_id
    for raw in ("/static/..%2f..%2f..%2fsecret.txt", "/static/%2e%2e/%2e%2e/secret.txt", "/../../secret.txt",
                "/static/../../../../etc/passwd", "/api/file?id=0/good&path=..%2f..%2fsecret.txt"):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:  # unnormalised request lines
            sock.sendall(f"GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.split(b" ")[1] in (b"404", b"400", b"422"), raw
        assert b"TOP SECRET" not in answer and b"root:" not in answer, raw
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    assert client.get("/static/index.html").status_code == 404  # only the page's own assets


def test_broken_files_give_warnings_never_a_500(served):
    server, _ = served
    client = httpx.Client(base_url=server.url)
    index = client.get("/api/index").json()
    broken = next(s for s in index["sources"] if s["id"] == "0/broken")
    warnings = "\n".join(broken["warnings"])
    assert "broken/config.json: holds a JSON list, not an object; ignored" in warnings
    assert "broken/summary.json: not readable as JSON" in warnings
    assert "broken/metrics.jsonl:2: skipped a malformed line" in warnings
    assert "broken/metrics.jsonl:4: skipped a malformed line (a JSON list, not an object)" in warnings
    assert "broken/metrics.jsonl:5: the last line is incomplete" in warnings
    assert "broken/checkpoints.jsonl:2: skipped a malformed line" in warnings
    assert "broken/episodes.jsonl:3: the last line is incomplete" in warnings
    metrics = client.get("/api/metrics", params={"id": "0/broken"})
    assert metrics.status_code == 200
    assert metrics.json()["rows"] == [{"step": 0, "train/loss": None}]  # NaN as null: strict JSON for the page
    for endpoint, params in [("run", {}), ("episodes", {}), ("episodes/step", {"step": 1}), ("datums", {}),
                             ("metrics", {"since": 99})]:
        response = client.get(f"/api/{endpoint}", params={"id": "0/broken", **params})
        assert response.status_code == 200, (endpoint, response.text)
    assert client.get("/api/episodes/step", params={"id": "0/broken", "step": 7}).status_code == 404
    assert client.get("/api/run", params={"id": "0/nope"}).json() == {"error": "no run '0/nope'"}
    assert client.get("/api/sweep", params={"id": "0/good"}).status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and '"poll_ms":2000' in page.text


def test_the_command_line(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    assert cookbook_main(["view", "--help"]) == 0
    assert "cookbook view DIR" in capsys.readouterr().out
    for argv, message in [(["view"], "give at least one directory"),
                          (["view", str(tmp_path / "missing")], "no such directory"),
                          (["view", str(run), "colour=red"], "unknown option colour="),
                          (["view", str(run), "port=x"], "port must be a number"),
                          (["view", str(run), "host=0.0.0.0"], "reachable from other machines"),
                          (["view", str(run), "--export"], "--export needs a file name")]:
        assert cookbook_main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], (argv, err)
    out = tmp_path / "report.html"
    assert cookbook_main(["view", str(run), "--export", str(out)]) == 0
    html = out.read_text()
    assert "window.COOKBOOK_EXPORT" in html and '"train/loss":0.5' in html and "Plotly" in html
    args = parse([str(run), "port=0", "poll=0.5", f"--export={out}"])
    assert (args.port, args.poll, args.export, args.dirs) == (0, 0.5, str(out), [str(run)])
    with pytest.raises(ConfigError, match="poll must be > 0"):
        parse([str(run), "poll=0"])
