"""Site calibration (facegate.calibrate) on generated score distributions: a known shift and scale
must be found, too few people must be called unreliable, a duplicate enrolment must not move the
estimate; the site table's record, adopt / revert and its audit log; drift warnings; the plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from facegate.calibrate import (
    SitePairs,
    SiteTable,
    SiteTableError,
    UnreliableEstimateError,
    adopt,
    audit_log,
    collect_pairs,
    denied_score_drift,
    drift_warnings,
    enrolment_growth,
    estimate_site,
    revert,
    table_in_force,
)
from facegate.calibrate.estimate import MIN_PAIRS, MIN_PEOPLE, fit_map
from facegate.calibrate.pairs import GALLERY, STRANGERS
from facegate.calibrate.stats import SURVIVAL_GRID, ImpostorBody, ShippedStats, survival_thresholds
from facegate.config import Config
from facegate.decide import open_set_policy
from facegate.types import OperatingPoint

# A synthetic shipped stack: impostor scores N(MU, SD); the curve's thresholds are its exact quantiles.
MU, SD = 0.015, 0.145
CURVE_FARS = [float(f"{10 ** (-k / 4):.3g}") for k in range(4, 25)]
STACK = "synthetic|stack"


def shipped_points() -> list[OperatingPoint]:
    return [OperatingPoint(far=f, threshold=MU + SD * float(norm.isf(f)), tar=0.99, dataset="synthetic") for f in CURVE_FARS]


class TP:
    def __init__(self, k, far, threshold, tar):
        self.k, self.far, self.threshold, self.tar = k, far, threshold, tar


def shipped_template_points() -> list[TP]:
    return [TP(k, p.far, p.threshold + 0.01 * math.log2(k), 0.99) for k in (2, 4) for p in shipped_points() if p.far >= 1e-4]


def shipped_stats() -> ShippedStats:
    thr = tuple(MU + SD * float(norm.isf(p)) for p in SURVIVAL_GRID)
    body = ImpostorBody(SURVIVAL_GRID, thr, MU, SD, 10**7)
    at3 = [p for p in shipped_points() if p.far == 1e-3][0]
    return ShippedStats(stack=STACK, dataset="synthetic", single=body, table_far=1e-3, table_threshold=at3.threshold)


def site_pairs(people: int, a: float, b: float, photos: int = 1, rho: float = 0.3, seed: int = 0) -> SitePairs:
    """Impostor pairs of ``people`` enrolled people whose scores are the shipped distribution moved and
    scaled (``a + b * s``), with person effects (a share ``rho`` of the variance comes from who is in the pair)."""
    rng = np.random.default_rng(seed)
    n = people * photos
    owner = np.repeat(np.arange(people), photos)
    u = rng.standard_normal(people)
    i, j = np.triu_indices(n, 1)
    keep = owner[i] != owner[j]
    i, j = i[keep], j[keep]
    z = math.sqrt(rho / 2) * (u[owner[i]] + u[owner[j]]) + math.sqrt(1 - rho) * rng.standard_normal(i.size)
    scores = (a + b * (MU + SD * z)).astype(np.float32)
    return SitePairs(scores=scores, a=owner[i].astype(np.int32), b=owner[j].astype(np.int32), genuine=np.zeros(0, np.float32),
                     genuine_unit=np.zeros(0, np.int32), unit_source=[GALLERY] * people, names=[f"p{k}" for k in range(people)],
                     photos={GALLERY: n}, total_pairs=int(scores.size))


def estimate(pairs: SitePairs, **kw):
    return estimate_site(pairs, shipped_stats(), shipped_points(), shipped_template_points(), bootstrap=kw.pop("bootstrap", 100), **kw)


# -- the estimator ---------------------------------------------------------------------------------------
def test_fit_map_recovers_an_exact_affine_relation():
    ship = np.array([-0.08, 0.015, 0.11, 0.2])
    m = fit_map(0.09 + 1.1 * ship, ship)
    assert m.a == pytest.approx(0.09) and m.b == pytest.approx(1.1)
    assert fit_map(ship + 0.05, ship, "shift").b == 1.0


def test_weighted_survival_thresholds_match_repetition():
    rng = np.random.default_rng(0)
    s = np.sort(rng.normal(size=400))
    w = rng.integers(0, 4, size=400).astype(float)
    rep = np.repeat(s, w.astype(int))
    got = survival_thresholds(s, (0.75, 0.5, 0.1), w, presorted=True)
    want = survival_thresholds(rep, (0.75, 0.5, 0.1))
    assert np.allclose(got, want, atol=0.02)


@pytest.mark.parametrize("a,b", [(0.09, 1.0), (0.05, 1.1), (-0.03, 0.9)])
def test_a_known_shift_and_scale_is_found(a, b):
    """A site whose impostor scores are the shipped ones moved and scaled: with the tail following the
    body (tail_decay 0) the site curve is the shipped one mapped, and the interval covers the truth."""
    est = estimate(site_pairs(300, a, b), tail_decay=0.0, spread_prior=None, stated="estimate")
    assert est.map.a == pytest.approx(a, abs=0.02) and est.map.b == pytest.approx(b, abs=0.04)
    truth = a + b * (MU + SD * float(norm.isf(1e-4)))
    p = est.point(1e-4)
    assert p.threshold == pytest.approx(truth, abs=0.02)
    assert p.low <= truth <= p.high  # the interval covers the truth
    if b <= 1.05:
        assert est.reliable, est.reasons
    else:  # a spread 10% wider is at the edge of the model's premise: found, and not adopted without force
        assert not est.reliable and all("spread" in r for r in est.reasons), est.reasons
    assert p.shipped_threshold == pytest.approx(MU + SD * float(norm.isf(1e-4)))
    t2 = [t for t in est.template_points if t.k == 2 and t.far == 1e-3][0]  # templates move with the curve
    assert t2.threshold == pytest.approx(est.map(MU + SD * float(norm.isf(1e-3)) + 0.01), abs=1e-9)


def test_the_tail_moves_less_than_the_body_by_the_stated_decay():
    from facegate.calibrate.estimate import TAIL_DECAY, TAIL_FROM, TAIL_HALF, tail_decay_for, tail_weight

    est = estimate(site_pairs(300, 0.09, 1.0), stated="estimate")
    move = est.map(MU) - MU  # the mean's move, as the estimate measured it (about 0.09)
    decay = TAIL_DECAY / (1 + move / TAIL_HALF)
    assert est.tail_decay == pytest.approx(decay) and tail_decay_for(est.map, MU) == pytest.approx(decay)
    for far in (1e-1, 1e-2, 1e-3, 1e-4, 1e-6):
        t = MU + SD * float(norm.isf(far))
        w = 1.0 if far >= TAIL_FROM else max(0.0, 1 - decay * math.log10(TAIL_FROM / far))
        assert tail_weight(far, decay) == pytest.approx(w)
        assert est.point(far).threshold == pytest.approx(t + w * (est.map(t) - t), abs=1e-9)
    assert est.point(1e-6).threshold - est.point(1e-6).shipped_threshold < 0.6 * move  # the far tail moves least


def test_a_bigger_shift_keeps_more_of_its_move_in_the_tail():
    """The decay per decade halves where the mean moved up by TAIL_HALF; a site whose mean moved down (or not
    at all) keeps the full decay (its tail moves least: the safe side for a stated FAR)."""
    from facegate.calibrate.estimate import TAIL_DECAY, TAIL_HALF, AffineMap, tail_decay_for

    assert tail_decay_for(AffineMap(0.0, 1.0), MU) == pytest.approx(TAIL_DECAY)
    assert tail_decay_for(AffineMap(TAIL_HALF, 1.0), MU) == pytest.approx(TAIL_DECAY / 2)
    assert tail_decay_for(AffineMap(-0.05, 1.0), MU) == pytest.approx(TAIL_DECAY)
    assert tail_decay_for(AffineMap(0.3, 1.0), MU, half=None) == pytest.approx(TAIL_DECAY)  # the fixed rule
    t4 = MU + SD * float(norm.isf(1e-4))
    share = {}
    for a in (0.03, 0.12):  # generated sites: a known shift, found, and a bigger share of it kept at FAR 1e-4
        est = estimate(site_pairs(300, a, 1.0, seed=2), stated="estimate")
        assert est.map.a == pytest.approx(a, abs=0.02)
        share[a] = (est.point(1e-4).threshold - t4) / (est.map(t4) - t4)
    assert 0 < share[0.03] < share[0.12] < 1


def test_the_stated_far_is_the_expected_far_over_the_estimate_uncertainty():
    """A FAR is convex in the threshold: the estimate's own threshold stands for more than its FAR on average
    over what the pairs leave unknown; the adopted one (stated="expected") stands for exactly it."""
    from facegate.calibrate.estimate import Curve, expected_thresholds

    rng = np.random.default_rng(0)
    fars = [1e-2, 1e-3, 1e-4]
    base = np.asarray([0.35, 0.45, 0.55])
    rows = base + rng.normal(0, 0.02, (400, 1))  # replicate curves: the same shape, shifted
    got = expected_thresholds(rows, fars)
    for f, t, b in zip(fars, got, base):
        mean_far = np.mean([Curve.of([_Pt(ff, x) for ff, x in zip(fars, row)]).far(t) for row in rows])
        assert mean_far == pytest.approx(f, rel=0.02)
        assert t > b  # stricter than the middle curve's own threshold
    plain = estimate(site_pairs(30, 0.09, 1.0, seed=3), stated="estimate")
    adopted = estimate(site_pairs(30, 0.09, 1.0, seed=3))
    for f in (1e-3, 1e-4):
        assert 0 < adopted.point(f).threshold - plain.point(f).threshold < 0.01


class _Pt:
    def __init__(self, far, threshold):
        self.far, self.threshold = far, threshold


def test_templates_move_by_the_common_shift_over_the_norm_of_their_mean():
    """A k-photo template's score is its photos' mean score over the norm of their mean, so the site's common
    move a reaches it as a / r_k, r_k^2 = (1 + (k - 1) g) / k with g the mean same-person score."""
    from facegate.calibrate.estimate import template_maps

    pairs = site_pairs(60, 0.09, 1.0)
    pairs.genuine = np.full(40, 0.6, np.float32)
    est = estimate(pairs, stated="estimate")
    maps = template_maps(est.map, pairs, shipped_stats(), {2, 4}, "genuine")
    for k in (2, 4):
        assert maps[k].a == pytest.approx(est.map.a / math.sqrt((1 + (k - 1) * 0.6) / k))
        assert maps[k].b == est.map.b
    t2 = [t for t in est.template_points if t.k == 2 and t.far == 1e-2][0]
    shipped2 = MU + SD * float(norm.isf(1e-2)) + 0.01
    assert t2.threshold == pytest.approx(maps[2](shipped2), abs=1e-9)  # at FAR 1e-2 the whole move
    assert t2.threshold > est.map(shipped2)  # more than a single photo's
    # without same-person pairs the single-photo rule applies
    assert template_maps(est.map, site_pairs(60, 0.09, 1.0), shipped_stats(), {2}, "genuine") == {}
    assert template_maps(est.map, pairs, shipped_stats(), {2}, "single") == {}


def test_thirty_people_one_photo_each_is_enough_and_ten_is_not():
    ok = estimate(site_pairs(30, 0.09, 1.0, seed=3))
    assert ok.counts["impostor_pairs"] == 435 and ok.counts["people"] == 30
    assert ok.reliable, ok.reasons
    few = estimate(site_pairs(10, 0.09, 1.0))
    assert not few.reliable
    assert any("only 10 people" in r for r in few.reasons) and any("impostor pairs" in r for r in few.reasons)
    assert MIN_PEOPLE <= 30 and MIN_PAIRS <= 435


def test_interval_narrows_with_more_people():
    width = {n: 0.0 for n in (30, 300)}
    for seed in (1, 2, 3):  # summed over three sites: one draw of 30 people may happen to look tight
        for n in width:
            p = estimate(site_pairs(n, 0.09, 1.0, seed=seed)).point(1e-4)
            width[n] += p.high - p.low
            assert p.far_low < 1e-4 < p.far_high
    assert width[300] < width[30] / 2


def test_a_person_enrolled_twice_does_not_move_the_estimate():
    clean = site_pairs(40, 0.09, 1.0, seed=5)
    dup = site_pairs(40, 0.09, 1.0, seed=5)
    i = np.flatnonzero((dup.a == 0) & (dup.b == 1))[0]
    dup.scores = dup.scores.copy()
    dup.scores[i] = 0.93  # p0 and p1 are the same person
    e0, e1 = estimate(clean), estimate(dup)
    assert e1.point(1e-4).threshold == pytest.approx(e0.point(1e-4).threshold, abs=0.01)
    assert [(s["a"], s["b"]) for s in e1.suspects] == [("p0", "p1")]
    assert e1.counts["impostor_pairs_used"] == e1.counts["impostor_pairs"] - 1


def test_statistics_of_another_table_are_refused():
    other = [OperatingPoint(far=p.far, threshold=p.threshold + 0.01, tar=p.tar, dataset="mine") for p in shipped_points()]
    with pytest.raises(Exception, match="not the one its impostor statistics"):
        estimate_site(site_pairs(30, 0, 1), shipped_stats(), other)


# -- pairs from a site's sources -----------------------------------------------------------------------------
def _unit(rng, n, d=16):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_collect_pairs_counts_gallery_strangers_and_labelled_pairs():
    rng = np.random.default_rng(0)
    people = {f"p{i}": _unit(rng, 1 + i % 2) for i in range(30)}  # 15 with one photo, 15 with two
    photos = 45
    strangers = _unit(rng, 7)
    labelled = (_unit(rng, 6), ["x", "x", "y", "y", "z", "z"])
    pairs = collect_pairs(people, strangers, labelled)
    c = pairs.counts()
    gallery_pairs = photos * (photos - 1) // 2 - 15  # minus the 15 same-person pairs
    assert c["gallery_pairs"] == gallery_pairs + 7 * photos
    assert c["strangers_pairs"] == 7 * photos
    assert c["labelled_pairs"] == 15 - 3
    assert c["impostor_pairs"] == gallery_pairs + 7 * photos + 12
    assert c["genuine_pairs"] == 15 + 3 and c["people"] == 33 and c["stranger_photos"] == 7
    assert set(pairs.templates) == {2} and pairs.templates[2][0].size == 15 * (photos - 2)
    assert all(pairs.unit_source[u] == STRANGERS for u in pairs.a[-12 - 7 * photos : -12])
    # a pair's score is the cosine of its photos
    only = collect_pairs({"a": people["p0"], "b": people["p2"]})
    assert only.scores[0] == pytest.approx(float(people["p0"][0] @ people["p2"][0]), abs=1e-6)


def test_each_pair_of_people_counts_once_however_many_photos_they_have():
    rng = np.random.default_rng(0)
    people = {"a": _unit(rng, 3), "b": _unit(rng, 1), "c": _unit(rng, 2)}
    pairs = collect_pairs(people)
    w = pairs.pair_weights()
    assert pairs.pairs == 3 * 1 + 3 * 2 + 1 * 2
    for u, v in (("a", "b"), ("a", "c"), ("b", "c")):
        iu, iv = pairs.names.index(u), pairs.names.index(v)
        sel = ((pairs.a == iu) & (pairs.b == iv)) | ((pairs.a == iv) & (pairs.b == iu))
        assert w[sel].sum() == pytest.approx(1.0)


def test_collect_pairs_subsamples_past_max_pairs():
    rng = np.random.default_rng(0)
    pairs = collect_pairs({f"p{i}": _unit(rng, 1) for i in range(100)}, max_pairs=1000)
    assert pairs.pairs == 1000 and pairs.total_pairs == 4950


# -- the site table, adopt and revert ------------------------------------------------------------------------
def site_table(people=300, a=0.09, by="ada", **kw) -> SiteTable:
    est = estimate(site_pairs(people, a, 1.0), **kw)
    return SiteTable.from_estimate(est, by=by, sources={"gallery": "gallery.sqlite"}, shipped_points=shipped_points(),
                                   shipped_template_points=shipped_template_points(), shipped_dataset="synthetic",
                                   face_counts={1: people}, model="m@1")


def test_site_table_round_trips_and_feeds_the_decision_layer(tmp_path):
    t = site_table()
    back = SiteTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.to_dict() == t.to_dict()
    t.save(tmp_path / "site.json")
    assert SiteTable.load(tmp_path / "site.json").to_dict() == t.to_dict()
    # the site points give the decision layer higher bars than the shipped ones (the site's impostors score higher)
    ship = open_set_policy(Config(fpir=1e-2), shipped_points(), shipped_template_points(), {1: 50, 2: 10})
    site = open_set_policy(Config(fpir=1e-2), t.operating_points(), t.template_points, {1: 50, 2: 10})
    assert site.threshold > ship.threshold + 0.02  # at FAR 2e-4 a share of the 0.09 move (the tail moves less)
    assert site.bar(2) > site.bar(1)
    assert t.inputs["tail_decay"] == pytest.approx(0.15, abs=0.01)  # the rule applied: a 0.09 move halves the decay
    assert [r["fpir"] for r in t.fpir] == [1e-2, 3e-3, 1e-3] and t.fpir[0]["identities"] == 300
    assert "site table for synthetic|stack" in t.describe() and "reliable" in t.describe()
    with pytest.raises(SiteTableError):
        SiteTable.from_dict({"version": 1, "stack": "x"})


def test_adopt_revert_round_trip_with_its_audit_log(tmp_path):
    store = tmp_path / "site_tables.json"
    assert table_in_force(store, STACK) is None
    first, second = site_table(a=0.09, by="ada"), site_table(a=0.05, by="bob")
    e1 = adopt(store, first, by="ada", shipped_points=shipped_points())
    assert e1.before["table"] == "shipped" and e1.after["table"] == first.created and not e1.forced
    assert e1.before["thresholds"]["0.0001"] < e1.after["thresholds"]["0.0001"]
    in_force = table_in_force(store, STACK)
    assert {k: v for k, v in in_force.to_dict().items() if k != "adoption"} == first.to_dict()
    assert in_force.adoption == {"when": e1.when, "by": "ada", "forced": False, "note": ""}
    assert table_in_force(store, "another|stack") is None
    second.created = "2027-01-01T00:00:00+00:00"
    adopt(store, second, by="bob")
    assert table_in_force(store, STACK).by == "bob"
    r1 = revert(store, STACK, by="carol")
    assert r1.before["table"] == second.created and r1.after["table"] == first.created
    assert table_in_force(store, STACK).by == "ada"
    r2 = revert(store, STACK, by="carol", shipped_points=shipped_points())
    assert r2.after["table"] == "shipped" and table_in_force(store, STACK) is None
    with pytest.raises(SiteTableError, match="nothing to revert"):
        revert(store, STACK, by="carol")
    log = audit_log(store)
    assert [(e.action, e.by) for e in log] == [("adopt", "ada"), ("adopt", "bob"), ("revert", "carol"), ("revert", "carol")]
    assert all(e.when for e in log)


def test_an_unreliable_table_is_adopted_only_with_force(tmp_path):
    store = tmp_path / "site_tables.json"
    weak = site_table(people=10)
    assert not weak.reliable
    with pytest.raises(UnreliableEstimateError) as err:
        adopt(store, weak, by="ada")
    assert err.value.reasons == weak.reasons and table_in_force(store, STACK) is None
    ev = adopt(store, weak, by="ada", force=True)
    assert ev.forced and ev.reasons and table_in_force(store, STACK) is not None
    assert audit_log(store)[0].forced


def test_a_corrupt_store_is_a_clear_error(tmp_path):
    store = tmp_path / "site_tables.json"
    store.write_text("{not json")
    with pytest.raises(SiteTableError, match="not readable JSON"):
        table_in_force(store, STACK)


# -- drift ------------------------------------------------------------------------------------------------------
def test_enrolment_growth_warns_past_the_stated_share():
    t = site_table(people=40)
    assert enrolment_growth(t, people=45, faces=45) is None
    w = enrolment_growth(t, people=60, faces=60)
    assert w is not None and w.code == "enrolment_growth" and w.details["people_now"] == 60
    assert drift_warnings(None, people=1000, faces=1000) == []


def _denied_best(t: SiteTable, n: int, people: int, shift: float, seed: int = 0) -> np.ndarray:
    """Best scores of strangers over a gallery of one-photo people, from the site model moved by ``shift``;
    those named at FPIR 1e-2 are not denied."""
    rng = np.random.default_rng(seed)
    a, b = t.map["a"], t.map["b"]
    s = a + b * (MU + SD * rng.standard_normal((n, people))) + shift
    best = s.max(axis=1)
    bar = open_set_policy(Config(fpir=1e-2), t.operating_points(), t.template_points, {1: people}).threshold
    return best[best <= bar]


def _named(t: SiteTable, people: int, shift: float, n: int = 20000) -> float:
    """The share of strangers really named at the FPIR 1e-2 bar when every score moved by ``shift``."""
    rng = np.random.default_rng(7)
    best = (t.map["a"] + t.map["b"] * (MU + SD * rng.standard_normal((n, people))) + shift).max(axis=1)
    return float((best > open_set_policy(Config(fpir=1e-2), t.operating_points(), t.template_points, {1: people}).threshold).mean())


def test_denied_scores_that_match_the_table_raise_no_warning_and_drifted_ones_do():
    t = site_table(people=300)
    assert denied_score_drift(t, _denied_best(t, 2000, 50, 0.0), {1: 50}, 1e-2) is None
    w = denied_score_drift(t, _denied_best(t, 2000, 50, 0.08), {1: 50}, 1e-2)
    assert w is not None and w.code == "impostor_drift" and w.severity == "warning"
    # the size: the shift is found, and the share of strangers it implies is the share really named, within 2x
    assert w.details["shift"] == pytest.approx(0.08, abs=0.01)
    real = _named(t, 50, 0.08) / _named(t, 50, 0.0) * w.details["stated_fpir"]
    assert 0.5 < w.details["implied_fpir"] / real < 2 and w.details["fpir_factor"] > 4
    assert "+0.07" in w.message or "+0.08" in w.message
    low = denied_score_drift(t, _denied_best(t, 2000, 50, -0.12), {1: 50}, 1e-2)
    assert low is not None and low.severity == "info"
    assert denied_score_drift(t, _denied_best(t, 30, 50, 0.2), {1: 50}, 1e-2) is None  # too few checks to say
    ws = drift_warnings(t, people=400, faces=400, denied_best=_denied_best(t, 2000, 50, 0.08), face_counts={1: 50})
    assert [w.code for w in ws] == ["enrolment_growth", "impostor_drift"]
    assert json.dumps([w.to_dict() for w in ws])


def test_plot_writes_a_png(tmp_path):
    from facegate.calibrate.plot import plot_site

    pairs = site_pairs(40, 0.09, 1.0)
    pairs.genuine = np.full(20, 0.7, np.float32)
    t = site_table(people=40)
    plot_site(tmp_path / "site.png", pairs, shipped_stats(), shipped_points(), t)
    assert (tmp_path / "site.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- gathering a site's embeddings ------------------------------------------------------------------------------
class _Person:
    def __init__(self, pid, name):
        self.id, self.name = pid, name


class _Gallery:
    """What gallery_people needs of a gallery: paginated people and each one's embeddings."""

    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.emb = {i: _unit(rng, 1 + i % 3) for i in range(n)}

    def people(self, limit=None, offset=0):
        ids = sorted(self.emb)[offset : offset + limit]
        return [_Person(i, f"p{i}") for i in ids]

    def embeddings(self, pid):
        return self.emb[pid]


def test_gallery_people_reads_every_page_and_counts_faces():
    from facegate.calibrate import gallery_people

    people, counts = gallery_people(_Gallery(25), page=10)
    assert len(people) == 25 and people["p4"].shape == (2, 16)
    assert counts == {1: 9, 2: 8, 3: 8}


def test_a_large_gallery_is_calibrated_from_a_sample_of_its_people_and_stated_at_its_size():
    from facegate.calibrate import gallery_people

    g = _Gallery(25)
    people, counts = gallery_people(_Counted(g), page=10, max_people=12)
    assert len(people) == 12 and counts == {1: 9, 2: 8, 3: 8}  # every person counted, 12 read


class _Counted:
    """A gallery whose people carry their face counts (as facegate's do), so a sample can be drawn before reading."""

    def __init__(self, g):
        self.g = g

    def people(self, limit=None, offset=0):
        out = self.g.people(limit, offset)
        for p in out:
            p.faces = len(self.g.emb[p.id])
        return out

    def embeddings(self, pid):
        return self.g.embeddings(pid)


def test_embed_folder_embeds_each_photo_and_lists_the_ones_without_a_face(tmp_path, hopper_path, astronaut_path):
    import shutil

    from facegate.calibrate import embed_folder
    from facegate.pipeline import Pipeline

    for name, src in (("grace", hopper_path), ("eileen", astronaut_path)):
        (tmp_path / "lab" / name).mkdir(parents=True)
        shutil.copy(src, tmp_path / "lab" / name / src.name)
    (tmp_path / "lab" / "nobody").mkdir()
    (tmp_path / "lab" / "nobody" / "grey.png").write_bytes(_grey_png())
    out = embed_folder(Pipeline(Config()), tmp_path / "lab", labelled=True, progress=False)
    assert sorted(out.labels) == ["eileen", "grace"] and out.embeddings.shape[0] == 2
    assert np.allclose(np.linalg.norm(out.embeddings, axis=1), 1, atol=1e-5)
    assert len(out.skipped) == 1 and out.skipped[0].endswith("grey.png")


def _grey_png() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))
    return buf.tobytes()


@pytest.mark.parametrize("a,b,word", [(0.05, 1.2, "spread"), (0.2, 1.0, "moved up")])
def test_a_site_beyond_the_models_premise_is_not_adopted_without_force(a, b, word):
    """The tail rule was fitted on sites that moved up to +0.12 and spread within 5%: a site measured
    well beyond that (a wider spread, a bigger move) is found as such and refused, whatever its size."""
    from facegate.calibrate.estimate import MAX_MOVE, MAX_SPREAD

    est = estimate(site_pairs(300, a, b))
    assert not est.reliable and any(word in r for r in est.reasons), est.reasons
    assert est.point(1e-4).threshold > est.point(1e-4).shipped_threshold  # still estimated, for --force
    ok = estimate(site_pairs(300, min(a, MAX_MOVE - 0.05), min(b, MAX_SPREAD - 0.06)))
    assert ok.reliable, ok.reasons
