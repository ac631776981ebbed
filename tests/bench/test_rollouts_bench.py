"""bench/rollouts.py: both sides roll out the same batch on both backends, and the report says so."""

from __future__ import annotations

import json

from bench import rollouts


def test_a_small_run_reports_both_sides_on_both_backends(tmp_path):
    out = tmp_path / "rollouts.json"
    result = rollouts.main(["--groups", "2", "--group-size", "3", "--max-tokens", "2", "--reps", "1",
                            "--warmup", "0", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    assert set(result["backends"]) == {"in-process", "serve-tinker"}
    for rows in result["backends"].values():
        assert set(rows) == {"one request per episode", "shared first prompt"}
        assert rows["one request per episode"]["speedup"] == 1.0
        for row in rows.values():  # 6 replies of 1-2 tokens each
            assert 6 <= row["sampled_tokens"] <= 12 and len(row["seconds"]) == 1
