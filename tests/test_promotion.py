"""The champion gate that retraining relies on."""
import math

import pytest

from audiovae.tracking.promotion import decide, flat_metrics

METRIC = "classifier.generated_accuracy"


def metrics(value, **extra):
    return {METRIC: value, "inner.test_rmse_db": 5.0, **extra}


def test_first_model_becomes_champion():
    d = decide(metrics(0.5), None, METRIC, "max", 0.01)
    assert d.promote and "first" in d.reason


def test_better_challenger_is_promoted():
    assert decide(metrics(0.93), metrics(0.90), METRIC, "max", 0.01).promote


def test_worse_or_equal_within_margin_is_not():
    assert not decide(metrics(0.85), metrics(0.90), METRIC, "max", 0.01).promote
    assert not decide(metrics(0.905), metrics(0.90), METRIC, "max", 0.01).promote
    assert not decide(metrics(0.90), metrics(0.90), METRIC, "max", 0.0).promote


def test_direction_min():
    assert decide(metrics(0.9, **{"audio.test_lsd_db": 4.0}), metrics(0.9, **{"audio.test_lsd_db": 5.0}),
                  "audio.test_lsd_db", "min", 0.1).promote
    assert not decide(metrics(0.9, **{"audio.test_lsd_db": 5.5}), metrics(0.9, **{"audio.test_lsd_db": 5.0}),
                      "audio.test_lsd_db", "min", 0.1).promote


def test_failed_or_partial_evaluation_is_never_promoted():
    assert not decide(None, metrics(0.1), METRIC).promote
    assert not decide({}, None, METRIC).promote
    d = decide({"inner.test_rmse_db": 5.0}, None, METRIC)
    assert not d.promote and "missing" in d.reason
    assert not decide(metrics(math.nan), None, METRIC).promote
    assert not decide(metrics(0.99), None, METRIC, required=("speed.encode_once_speedup",)).promote
    with pytest.raises(ValueError):
        decide(metrics(0.9), None, METRIC, mode="up")


def test_flat_metrics():
    assert flat_metrics({"a": {"b": 1, "c": "x", "d": True}, "e": 2.5}) == {"a.b": 1.0, "e": 2.5}
