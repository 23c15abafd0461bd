"""The decision policy (facegate.decide) on synthetic calibrated curves: sparse and dense tables,
the FPIR derivation at a gallery's size, templates, the max rule, explicit thresholds, warnings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from facegate.config import Config
from facegate.decide import FarCurve, TemplateTable, open_set_policy
from facegate.errors import UsageError
from facegate.types import OperatingPoint


def line_curve(fars, slope=-0.012, at0=0.88, tar=lambda f: 1 + 0.1 * math.log10(f)) -> list[OperatingPoint]:
    """A synthetic stack: threshold linear in log10 FAR (0.88 at 1e-1, +0.012 per decade stricter)."""
    return [OperatingPoint(far=f, threshold=at0 + slope * (math.log10(f) + 1), tar=tar(f), dataset="synthetic")
            for f in fars]


SPARSE = line_curve([1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
DENSE = line_curve([10 ** (-1 - i / 4) for i in range(21)])  # 4 per decade, 1e-1 .. 1e-6


@dataclass(frozen=True)
class TP:
    k: int
    far: float
    threshold: float
    tar: float | None


def template_points(curve, margin=lambda k: 0.004 * math.log2(k)) -> list[TP]:
    """Templates of k photos: the single curve plus a margin growing with k, calibrated to 1e-4."""
    return [TP(k, p.far, p.threshold + margin(k), p.tar) for k in (2, 4, 8) for p in curve if p.far >= 1e-4]


@pytest.mark.parametrize("points", [SPARSE, DENSE], ids=["sparse", "dense"])
def test_far_curve_interpolates_log_linearly_and_inverts(points):
    c = FarCurve.from_points(list(reversed(points)))  # order does not matter
    assert c.threshold(1e-3) == pytest.approx(0.88 + 0.024)
    assert c.threshold(10**-3.5) == pytest.approx(0.88 + 0.030)  # between points: linear in log FAR
    assert c.far(c.threshold(3e-5)) == pytest.approx(3e-5, rel=1e-6)
    assert c.tar(1e-3) == pytest.approx(0.7)
    # beyond the calibrated range: the last segment extended below it, the loosest point kept above it
    assert c.threshold(1e-7) == pytest.approx(0.88 + 0.012 * 6)
    assert c.threshold(0.5) == pytest.approx(0.88)
    assert c.tar(1e-7) is None and not c.in_range(1e-7)


def test_fpir_gives_each_identity_fpir_over_n_and_moves_with_the_gallery():
    cfg = Config(fpir=1e-2)
    small = open_set_policy(cfg, DENSE, [], {1: 10})
    big = open_set_policy(cfg, DENSE, [], {1: 1000})
    assert small.far == pytest.approx(1e-3) and big.far == pytest.approx(1e-5)
    assert big.threshold > small.threshold  # more people enrolled: a stricter bar
    assert small.threshold == pytest.approx(FarCurve.from_points(DENSE).threshold(1e-3))
    assert small.tpir == pytest.approx(0.7) and big.tpir == pytest.approx(0.5)
    assert small.to_dict()["fpir"] == 1e-2 and not small.warnings


def test_templates_are_held_higher_and_max_rule_splits_the_far():
    table = TemplateTable.build(FarCurve.from_points(SPARSE), template_points(SPARSE))
    assert table.threshold(1e-3, 4) == pytest.approx(table.threshold(1e-3, 1) + 0.008)
    assert table.threshold(1e-3, 3) == pytest.approx(table.threshold(1e-3, 1) + 0.006)  # between calibrated ks
    assert table.threshold(1e-3, 50) == pytest.approx(table.threshold(1e-3, 8))  # saturates
    # below the template table's range (1e-4) the margin at its lowest FAR is kept
    assert table.threshold(1e-6, 2) - table.threshold(1e-6, 1) == pytest.approx(0.004)
    assert table.far(table.threshold(2e-5, 4), 4) == pytest.approx(2e-5, rel=1e-4)
    mean = open_set_policy(Config(fpir=1e-2), SPARSE, template_points(SPARSE), {1: 5, 4: 5})
    assert mean.bar(4) == pytest.approx(mean.bar(1) + 0.008)
    best = open_set_policy(Config(fpir=1e-2), SPARSE, template_points(SPARSE), {1: 5, 4: 5}, rule="max")
    assert best.bar(4) == pytest.approx(FarCurve.from_points(SPARSE).threshold(best.far / 4))


def test_warnings_below_the_calibrated_range_and_for_unusable_tpir():
    p = open_set_policy(Config(fpir=1e-3), SPARSE, [], {1: 5000})  # 2e-7 per comparison
    assert any("below the calibrated range" in w for w in p.warnings)
    assert any("usable TPIR" in w for w in p.warnings) or p.tpir is None
    low_tar = line_curve([1e-1, 1e-2, 1e-3, 1e-4], tar=lambda f: 0.3)
    q = open_set_policy(Config(fpir=1e-2), low_tar, [], {1: 10})
    assert q.tpir == pytest.approx(0.3) and any("usable TPIR" in w for w in q.warnings)


def test_explicit_threshold_reports_what_the_table_gives_for_it():
    p = open_set_policy(Config(threshold=0.904), SPARSE, [], {1: 100})
    assert p.explicit and p.bar(7) == 0.904
    assert p.far == pytest.approx(1e-3) and p.fpir == pytest.approx(0.1)
    assert "explicit threshold 0.9040" in p.describe()
    with pytest.raises(UsageError):
        open_set_policy(Config(), [], [], {1: 3})  # no calibration and no explicit threshold
    assert np.isfinite(open_set_policy(Config(threshold=0.5), [], [], {1: 3}).threshold)


def test_bench_fpir_measures_stated_against_measured_on_tiny_galleries(tmp_path):
    """The FPIR benchmark's machinery on synthetic embeddings (the lead runs it on LFW): people are
    tight clusters, so strangers are never named and enrolled people are."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_fpir import clopper_pearson, measure, render

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    labels = np.repeat([f"p{i:02d}" for i in range(40)], 4)
    emb = np.repeat(centres, 4, axis=0) + 0.05 * rng.normal(size=(160, 32))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    class Stack:  # only the calibrated curve is needed: no model runs
        config = Config(home=tmp_path)
        operating_points = DENSE
        template_points: list = []

    rows = measure(emb, labels, np.ones(160, bool), Stack(), sizes=(5, 10), ks=(1, 3), tmp=tmp_path)
    assert [(r["N"], r["k"]) for r in rows] == [(5, 1), (10, 1), (5, 3), (10, 3)]
    assert all(r["strangers_named"] == 0 and r["held"] and r["tpir_measured"] == 1.0 for r in rows)
    assert rows[1]["far"] == pytest.approx(1e-3) and rows[1]["strangers"] == 30
    assert "| 10 | 3 |" in render(rows, "synthetic")
    lo, hi = clopper_pearson(0, 30)
    assert lo == 0.0 and 0.1 < hi < 0.12


def test_enrolment_rules_are_the_decision_layers():
    """Enrolment integrity decides with the 1:N and 1:1 rules above, nothing new: a new face is 'somebody already
    enrolled' at the gallery's policy with the per-comparison FAR capped at 1e-4; a photo joins a person when it
    verifies against one of their photos at FAR 1e-3; a gallery's photos and people are checked the same way."""
    from facegate.decide import (
        CONFLICT_FAR,
        agrees_with,
        conflicting_match,
        consistency_threshold,
        decision_threshold,
        disagreeing_pairs,
        enrolment_policy,
        lookalike,
    )

    cfg = Config(fpir=1e-2)
    small, big = {1: 2}, {1: 1000}
    # 2 people: the gallery gives each FAR 5e-3; enrolment holds a conflict to 1e-4 (a stricter bar)
    assert open_set_policy(cfg, DENSE, [], small).far == pytest.approx(5e-3)
    assert enrolment_policy(cfg, DENSE, [], small).far == pytest.approx(CONFLICT_FAR)
    assert enrolment_policy(cfg, DENSE, [], small).threshold > open_set_policy(cfg, DENSE, [], small).threshold
    # 1,000 people: FPIR / N is already below the cap, so the bar is the gallery's own
    assert enrolment_policy(cfg, DENSE, [], big).threshold == open_set_policy(cfg, DENSE, [], big).threshold
    assert enrolment_policy(cfg.replace(threshold=0.5), DENSE, [], small).threshold == 0.5  # explicit: as given
    # 1:1 at FAR 1e-3 whatever the config's own FAR
    thr, far = consistency_threshold(cfg.replace(far=1e-4), DENSE)
    assert (thr, far) == decision_threshold(cfg.replace(far=1e-3), DENSE)

    @dataclass(frozen=True)
    class M:
        person_id: int

    assert conflicting_match(None, 3) is None and conflicting_match(M(3), 3) is None
    assert conflicting_match(M(4), 3) == M(4) and conflicting_match(M(4), None) == M(4)

    e = np.eye(4, dtype=np.float32)
    same = np.array([1, 0.05, 0, 0], np.float32) / np.linalg.norm([1, 0.05, 0, 0])
    assert agrees_with(same, e[[0, 1]], thr, far).same  # its best score clears the bar
    assert not agrees_with(e[2], e[[0, 1]], thr, far).same
    assert disagreeing_pairs(np.stack([e[0], same, e[3]]), thr, far) == [(0, 2, 0.0), (1, 2, 0.0)]
    policy = open_set_policy(cfg, DENSE, [], big)
    assert lookalike(0.99, policy, 1, 1) == (True, pytest.approx(policy.threshold))
    assert not lookalike(policy.threshold, policy, 1, 1)[0]  # strictly above the bar, as every decision
