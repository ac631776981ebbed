import math

import pytest

from cookbook.lr_schedules import lr_at


def test_warmup_then_each_schedule():
    kw = dict(base_lr=1.0, total_steps=110, warmup_steps=10)
    assert [lr_at(s, schedule="constant", **kw) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert lr_at(50, schedule="constant", **kw) == 1.0
    assert lr_at(10, schedule="linear", **kw) == 1.0
    assert lr_at(60, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_at(109, schedule="linear", **kw) == pytest.approx(0.01)
    assert lr_at(60, schedule="cosine", **kw) == pytest.approx(0.5)
    assert lr_at(35, schedule="cosine", **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_at(109, schedule="cosine", min_lr_ratio=0.1, **kw) > 0.1


def test_bad_schedule_or_step_is_an_error():
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_at(0, base_lr=1.0, total_steps=10, schedule="exp")
    with pytest.raises(ValueError):
        lr_at(10, base_lr=1.0, total_steps=10)
