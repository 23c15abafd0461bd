"""Metrics, calibration and decisions on synthetic scores/embeddings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from facegate import Config
from facegate.decide import cosine, decide, decision_threshold
from facegate.errors import UsageError
from facegate.evaluate import metrics
from facegate.evaluate.calibration import calibrate
from facegate.types import OperatingPoint


def test_best_threshold_separable():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([0, 0, 0, 1, 1, 1], bool)
    t = metrics.best_threshold(scores, same)
    assert 0.3 < t < 0.7
    assert ((scores > t) == same).all()


def test_best_threshold_maximises_accuracy_against_brute_force():
    rng = np.random.default_rng(1)
    same = rng.random(400) < 0.5
    scores = np.where(same, rng.normal(0.6, 0.15, 400), rng.normal(0.3, 0.15, 400))
    t = metrics.best_threshold(scores, same)
    brute = max(((scores > c) == same).mean() for c in np.concatenate([scores, scores - 1e-9]))
    assert ((scores > t) == same).mean() == pytest.approx(brute)


def test_kfold_uses_other_folds_threshold():
    # Fold 1's own data would prefer a different threshold than folds 0 and 2.
    scores = np.array([0.1, 0.9, 0.1, 0.9, 0.45, 0.55, 0.1, 0.9])
    same = np.array([0, 1, 0, 1, 1, 0, 0, 1], bool)
    folds = np.array([0, 0, 2, 2, 1, 1, 3, 3])
    res = {r.fold: r for r in metrics.kfold_accuracy(scores, same, folds)}
    assert res[0].accuracy == 1.0
    assert res[1].accuracy == 0.0  # chosen elsewhere, so fold 1's inverted pair is all wrong


def test_roc_and_auc():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    same = np.array([1, 0, 1, 0], bool)
    far, tar, _ = metrics.roc(scores, same)
    assert far[0] == 0 and tar[-1] == 1 and far[-1] == 1
    assert metrics.auc(far, tar) == pytest.approx(0.75)


def test_calibrate_hits_requested_far():
    rng = np.random.default_rng(0)
    people, per = 120, 6
    centres = rng.normal(size=(people, 32))
    emb = np.repeat(centres, per, axis=0) + rng.normal(scale=0.9, size=(people * per, 32))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    labels = np.repeat(np.arange(people), per)
    points = calibrate(emb, labels, "synthetic", fars=(1e-2, 1e-3))
    assert [p.far for p in points] == [1e-2, 1e-3]
    # Check the realised FAR by brute force over all impostor pairs.
    s = emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    imp = s[iu][labels[iu[0]] != labels[iu[1]]]
    gen = s[iu][labels[iu[0]] == labels[iu[1]]]
    for p in points:
        realised = (imp > p.threshold).mean()
        assert realised <= p.far
        assert realised > p.far * 0.9  # the tightest threshold, not a loose one
        assert p.tar == pytest.approx((gen > p.threshold).mean())
    assert points[0].threshold < points[1].threshold
    assert points[0].dataset == "synthetic"


def test_calibrate_leaves_out_unresolvable_fars():
    emb = np.eye(4, dtype=np.float32)
    points = calibrate(emb, [0, 0, 1, 1], "tiny", fars=(1e-1, 1e-6))
    assert points == []  # 6 pairs cannot resolve either rate with >= 10 impostors


def test_decision_threshold_and_decide():
    pts = [OperatingPoint(1e-3, 0.55, 0.98, "x"), OperatingPoint(1e-4, 0.62, 0.95, "x")]
    assert decision_threshold(Config(far=1e-4), pts) == (0.62, 1e-4)
    assert decision_threshold(Config(threshold=0.3), pts) == (0.3, None)
    with pytest.raises(UsageError, match="calibrated: 0.001, 0.0001"):
        decision_threshold(Config(far=0.05), pts)
    v = decide(0.6, 0.55, 1e-3)
    assert v.same and v.far == 1e-3
    assert not decide(0.55, 0.55, 1e-3).same  # strictly above


def test_cosine():
    assert cosine(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(0)
    assert cosine(np.array([1.0, 1]), np.array([2.0, 2])) == pytest.approx(1)


def test_saved_tables_merge_by_embedder_and_load_back(tmp_path):
    """Operating points and template points are written into one table per file, keyed by
    embedder: writing one embedder's entry keeps the others."""
    import json

    from facegate.decide.tables import TemplatePoint, save_operating_points, save_template_points

    path = str(tmp_path / "points.json")
    save_operating_points(path, "a", [OperatingPoint(far=1e-3, threshold=0.9, tar=0.95, dataset="lfw")], {"s": 1})
    save_template_points(path, "b", [TemplatePoint(2, 1e-3, 0.93, 0.9, 10, 5, 100)], {"t": 2})
    save_operating_points(path, "a", [OperatingPoint(far=1e-2, threshold=0.8, tar=0.99, dataset="mine")], {})
    table = json.loads((tmp_path / "points.json").read_text())
    assert table["a"] == {"dataset": "mine", "settings": {}, "points": [{"far": 1e-2, "threshold": 0.8, "tar": 0.99}]}
    assert table["b"]["settings"] == {"t": 2} and table["b"]["points"][0]["k"] == 2
