"""bench/packing.py: both data sets have the lengths its docstring states, and a run reports every side."""

from __future__ import annotations

import json

from bench import packing


def test_quickstart_data_is_uniform_and_mixed_data_is_not():
    uniform = [d.model_input.length for d in packing._data(64, "addition")]
    mixed = [d.model_input.length for d in packing._data(64, "mixed")]
    assert 27 <= min(uniform) and max(uniform) <= 28
    assert min(mixed) < 40 and max(mixed) > 90  # lengths spread over a factor of 3 or more


def test_one_step_run_writes_a_row_per_side(tmp_path):
    out = tmp_path / "packing.json"
    result = packing.main(["--data", "addition", "--batch", "4", "--pack-lengths", "128", "--warmup", "0",
                           "--steps", "1", "--rank", "4", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["data"] == "addition" and set(result["sides"]) == {"unpacked", "packed 128"}
    # four 27-28 token conversations fill one 128-token row
    assert result["sides"]["unpacked"]["rows_per_step"] == 4 and result["sides"]["packed 128"]["rows_per_step"] == 1
    assert result["sides"]["unpacked"]["ratio_to_unpacked"] == 1.0
