"""Tracker, vote and hysteresis, metrics and event order, on synthetic boxes and embeddings (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.track.events import END, GATE, IDENTIFIED, LEFT, START, check_order, make_event
from facegate.track.identity import UNKNOWN, QualityModel, TrackIdentity, VotePolicy
from facegate.track.metrics import frame_ranges, id_switches, match_frame, name_changes
from facegate.track.tracker import KalmanBox, Tracker, TrackerConfig, assign, iou_matrix


# -- synthetic scenes ----------------------------------------------------------------------------
def moving_boxes(n_frames: int, starts, velocities, size=60.0, noise=1.5, seed=0):
    """Per frame: {object: box} for boxes moving at constant velocity with detection jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for f in range(n_frames):
        frame = {}
        for k, ((x, y), (vx, vy)) in enumerate(zip(starts, velocities)):
            cx, cy = x + vx * f, y + vy * f
            b = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]) + rng.normal(0, noise, 4)
            frame[k] = b.astype(np.float32)
        out.append(frame)
    return out


def run_tracker(frames, every=1, tracker=None, features=None, drop=None):
    """Feed ``frames`` to a tracker, detecting every ``every``-th frame; returns (tracker, per-frame
    {object: track id} for detection frames, started ids, ended ids)."""
    tr = tracker or Tracker()
    matches, started, ended = [], [], []
    for f, objs in enumerate(frames):
        if f % every:
            res = tr.step(f)
        else:
            keys = [k for k in objs if not (drop and drop(f, k))]
            boxes = np.stack([objs[k] for k in keys]) if keys else np.zeros((0, 4), np.float32)
            feats = np.stack([features[k] for k in keys]) if features is not None and keys else None
            res = tr.step(f, boxes, np.full(len(keys), 0.9, np.float32), feats)
            m = {}
            for k, t in zip(keys, res.assignment):
                if t is not None and t.confirmed:
                    m[k] = t.id
            matches.append(m)
        started += [t.id for t in res.started]
        ended += [t.id for t in res.ended]
    return tr, matches, started, ended


# -- tracker -------------------------------------------------------------------------------------
def test_iou_and_assignment_basics():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0], atol=1e-6)
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    # Hungarian maximises the total (0.8 + 0.85), greedy would take 0.9 first
    assert sorted(assign(sim, 0.05)) == [(0, 1), (1, 0)]
    assert assign(np.array([[0.01]]), 0.05) == []


def test_assignment_without_scipy_is_greedy(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails: the greedy fallback
    sim = np.array([[0.9, 0.8], [0.85, 0.1], [0.0, 0.02]])
    assert sorted(assign(sim, 0.05)) == [(0, 0), (1, 1)]  # best-first takes 0.9, then row 1's last column
    assert sorted(assign(np.array([[0.9, 0.2], [0.3, 0.8]]), 0.05)) == [(0, 0), (1, 1)]
    frames = moving_boxes(60, [(100, 100), (400, 120)], [(2, 0), (-1.5, 1)])
    _, matches, started, _ = run_tracker(frames, every=3)
    assert id_switches(matches) == 0 and started == [1, 2]


def test_kalman_follows_constant_velocity():
    kf = KalmanBox(np.array([0, 0, 50, 50], np.float32))
    for f in range(1, 30):
        kf.predict()
        kf.update(np.array([3 * f, 2 * f, 3 * f + 50, 2 * f + 50], np.float32))
    for _ in range(5):  # coast: the prediction keeps moving at the learned velocity
        kf.predict()
    np.testing.assert_allclose(kf.box, [3 * 34, 2 * 34, 3 * 34 + 50, 2 * 34 + 50], atol=2.0)


@pytest.mark.parametrize("every", [1, 3])
def test_ids_are_stable_for_separate_moving_faces(every):
    frames = moving_boxes(120, [(100, 100), (400, 120), (250, 350)], [(2, 0), (-1.5, 1), (0.5, -1.0)])
    tr, matches, started, ended = run_tracker(frames, every=every)
    assert id_switches(matches) == 0
    assert sorted(started) == [1, 2, 3]
    assert ended == []
    assert {m[0] for m in matches if 0 in m} == {1}  # object 0 is always track 1
    assert len(tr.active) == 3


def test_crossing_faces_keep_their_ids_with_appearance():
    # Two faces cross head-on; each looks different (appearance features), and detection runs every 2nd frame.
    frames = moving_boxes(80, [(100, 200), (500, 200)], [(5, 0), (-5, 0)], noise=2.0)
    feats = {0: np.eye(8)[0], 1: np.eye(8)[1]}
    _, matches, started, _ = run_tracker(frames, every=2, features=feats)
    assert id_switches(matches) == 0
    assert len(started) == 2


def test_short_gap_keeps_id_long_gap_ends_track():
    frames = moving_boxes(120, [(100, 100)], [(1, 0)])
    # missing for 10 frames (< max_age 30): same track
    _, matches, started, ended = run_tracker(frames, drop=lambda f, k: 40 <= f < 50)
    assert started == [1] and ended == [] and id_switches(matches) == 0
    # missing for 40 frames (> max_age): the track ends and a new one starts
    tr = Tracker(TrackerConfig(max_age=30))
    _, matches, started, ended = run_tracker(frames, tracker=tr, drop=lambda f, k: 40 <= f < 80)
    assert started == [1, 2] and ended == [1]
    assert id_switches(matches) == 1  # counted as one identity switch of object 0


def test_false_positive_is_never_reported_and_first_frame_confirms_at_once():
    tr = Tracker()
    res = tr.step(0, np.array([[10, 10, 60, 60]], np.float32), np.array([0.9], np.float32))
    assert [t.id for t in res.started] == [1]  # a video that opens on a face reports it at once
    res = tr.step(1, np.array([[10, 10, 60, 60], [300, 300, 350, 350]], np.float32), np.array([0.9, 0.9], np.float32))
    assert res.started == []  # the newcomer is tentative
    res = tr.step(2, np.array([[10, 10, 60, 60]], np.float32), np.array([0.9], np.float32))
    assert res.started == [] and len(tr.tracks) == 1  # the one-frame blip is gone, never reported


def test_weak_detections_extend_but_never_start_tracks():
    tr = Tracker(TrackerConfig(high_score=0.5, max_age=3))
    tr.step(0, np.array([[10, 10, 60, 60]], np.float32), np.array([0.9], np.float32))
    for f in range(1, 20):  # the face turns away: only weak detections, for longer than max_age
        res = tr.step(f, np.array([[10 + f, 10, 60 + f, 60]], np.float32), np.array([0.35], np.float32))
        assert res.ended == [] and res.assignment[0] is not None and res.assignment[0].id == 1
    res = tr.step(20, np.array([[400, 400, 450, 450]], np.float32), np.array([0.35], np.float32))
    assert res.assignment == [None] and len(tr.tracks) == 1  # a weak detection alone starts nothing


def test_end_all_returns_confirmed_tracks():
    tr = Tracker()
    tr.step(0, np.array([[10, 10, 60, 60], [100, 10, 160, 60]], np.float32), np.array([0.9, 0.9], np.float32))
    assert [t.id for t in tr.end_all()] == [1, 2]
    assert tr.tracks == []


# -- metrics ---------------------------------------------------------------------------------------
def test_id_switch_counting():
    seq = [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 2, "b": 1}, {"a": 2}, {"b": 1}, {"a": 2, "b": 1}]
    assert id_switches(seq) == 2  # the swap counts once per object; gaps do not
    assert id_switches([{"a": 1}, {}, {"a": 1}]) == 0
    gt = {"a": np.array([0, 0, 10, 10.0]), "b": np.array([50, 50, 60, 60.0])}
    assert match_frame(gt, {7: np.array([1, 1, 11, 11.0]), 9: np.array([200, 200, 210, 210.0])}) == {"a": 7}


def test_name_changes_and_ranges():
    assert name_changes(["A", "A", "B", "B"]) == (1, 0)
    assert name_changes([None, UNKNOWN, "A", UNKNOWN, "A"]) == (0, 3)
    assert name_changes(["A", UNKNOWN, "B"]) == (1, 1)  # a switch by way of unknown is still a switch
    assert name_changes(["A", "B", "A"]) == (2, 0)
    assert frame_ranges([5, 1, 2, 3, 9]) == [(1, 3), (5, 5), (9, 9)]


# -- vote and hysteresis -------------------------------------------------------------------------
DIM = 16
THR = 0.7


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture()
def people():
    rng = np.random.default_rng(1)
    return _unit(rng.standard_normal((3, DIM)))  # 0 = Ada, 1 = Bob, 2 = not enrolled


NAMES = {0: "Ada", 1: "Bob"}


def candidates(e, centres):
    """A two-person gallery's answer: (id, name, cosine) best first."""
    s = centres[:2] @ e
    return [(int(i), NAMES[int(i)], float(s[i])) for i in np.argsort(-s)]


def sample(centre, rng, noise=0.35):
    return _unit(centre + noise * rng.standard_normal(DIM) / np.sqrt(DIM))


def feed(idn, centre, people, rng, n, weight=1.0, noise=0.35):
    decisions = []
    for _ in range(n):
        e = sample(centre, rng, noise)
        idn.add(e, weight, candidates(e, people))
        d = idn.decide(candidates(idn.template, people))
        if d is not None:
            decisions.append(d)
    return decisions


def test_vote_names_a_track_once_after_min_samples(people):
    rng = np.random.default_rng(2)
    idn = TrackIdentity(THR, VotePolicy(min_samples=3))
    e = sample(people[0], rng)
    idn.add(e, 1.0, candidates(e, people))
    assert idn.decide(candidates(idn.template, people)) is None  # too little evidence yet
    ds = feed(idn, people[0], people, rng, 20)
    assert [d.label for d in ds] == ["Ada"]
    assert ds[0].previous is None and not ds[0].switch and ds[0].samples == 3
    assert idn.switches == 0 and idn.score > THR


def test_outlier_frames_do_not_flip_the_name(people):
    rng = np.random.default_rng(3)
    idn = TrackIdentity(THR)
    feed(idn, people[0], people, rng, 6)
    # two frames that look like Bob (a bad angle), then Ada again: the name stays
    ds = feed(idn, people[1], people, rng, 2, noise=0.2) + feed(idn, people[0], people, rng, 10)
    assert ds == [] and idn.label == "Ada"


def test_sustained_evidence_switches_exactly_once(people):
    rng = np.random.default_rng(4)
    idn = TrackIdentity(THR, VotePolicy(window=6))
    feed(idn, people[0], people, rng, 4)
    # the tracker swapped people: from now on every frame is clearly Bob
    ds = feed(idn, people[1], people, rng, 40, weight=3.0, noise=0.1)
    labels = [d.label for d in ds]
    assert labels.count("Bob") == 1 and "Ada" not in labels  # possibly by way of "unknown", never back
    assert idn.label == "Bob" and idn.switches == 1


def test_stranger_is_unknown_and_score_at_threshold_does_not_flicker(people):
    rng = np.random.default_rng(5)
    idn = TrackIdentity(THR)
    ds = feed(idn, people[2], people, rng, 15)
    assert [d.label for d in ds] == [UNKNOWN]
    # a named track whose template hovers just below the threshold (within exit_margin) keeps its name
    idn = TrackIdentity(THR, VotePolicy(exit_margin=0.05))
    feed(idn, people[0], people, rng, 5)
    template_cands = [(0, "Ada", THR - 0.02), (1, "Bob", 0.1)]
    assert idn.decide(template_cands) is None and idn.label == "Ada"
    d = idn.decide([(0, "Ada", THR - 0.08), (1, "Bob", 0.1)])
    assert d is not None and d.label == UNKNOWN and not d.switch and idn.revisions == 1


def test_quality_weights_favour_good_faces():
    from facegate.align import template

    tmpl = template(150, 0.25)
    chip = np.random.default_rng(0).integers(0, 255, (150, 150, 3), dtype=np.uint8)  # sharp texture
    qm = QualityModel()

    def lm(scale, yaw_shift=0.0):
        pts = (tmpl.points - 75) * scale + 200
        pts[4, 0] += yaw_shift * scale * 80  # nose off the eye midline = head turned
        return pts

    big, _ = qm(lm(1.0), chip, 0.9, box_width=80)
    small, _ = qm(lm(0.25), chip, 0.9, box_width=20)
    turned, _ = qm(lm(1.0, 0.2), chip, 0.9, box_width=80)
    profile, m = qm(lm(1.0), chip, 0.9, box_width=300)  # eyes close together for the box: a profile
    blurred, _ = qm(lm(1.0), np.full((150, 150, 3), 128, np.uint8), 0.9, box_width=80)
    assert big > turned > 0 and big > small and big > blurred
    assert profile == 0.0 and m["eye_box_ratio"] < 0.2


# -- events ----------------------------------------------------------------------------------------
def test_event_order_checker():
    good = [
        make_event(START, 0, 0.0, track=1),
        make_event(IDENTIFIED, 5, 0.2, track=1, name="Ada"),
        make_event(START, 6, 0.24, track=2),
        make_event(LEFT, 9, 0.36, track=1),
        make_event(GATE, 10, 0.4, track=1, decision="allow"),  # the service may answer late
        make_event(END, 12, 0.48),
    ]
    assert check_order(good) == []
    bad = [make_event(IDENTIFIED, 3, 0.1, track=1), make_event(START, 2, 0.08, track=1), make_event(LEFT, 4, 0.1, track=1),
           make_event(IDENTIFIED, 5, 0.2, track=1)]
    problems = check_order(bad)
    assert len(problems) == 3, problems
    ev = make_event(IDENTIFIED, 1, 0.04, score=float("nan"), box=np.array([1.23456, 2.0]))
    assert ev["score"] is None and ev["box"] == [1.2346, 2.0] and ev["wall"].endswith("+00:00")
    with pytest.raises(ValueError):
        make_event("bogus", 0, 0.0)


# -- template thresholds -------------------------------------------------------------------------
def test_effective_samples_follow_the_weights(people):
    rng = np.random.default_rng(6)
    idn = TrackIdentity(THR)
    assert idn.effective_samples == 0.0 and idn.decision_threshold == THR
    feed(idn, people[0], people, rng, 4, weight=0.5)
    assert idn.effective_samples == pytest.approx(4.0)  # equal weights: every sample counts
    lopsided = TrackIdentity(THR)
    feed(lopsided, people[0], people, rng, 1, weight=1.0)
    feed(lopsided, people[0], people, rng, 4, weight=0.01)
    assert 1.0 < lopsided.effective_samples < 1.1  # poor samples barely add to one good one


def test_template_threshold_decides_and_is_reported(people):
    rng = np.random.default_rng(7)

    def grows(n):  # a stricter bar for larger templates, as calibrated on LFW
        return THR + 0.05 * min(n - 1, 4) / 4

    strict = TrackIdentity(THR, VotePolicy(min_samples=3), template_threshold=grows)
    plain = TrackIdentity(THR, VotePolicy(min_samples=3))
    for idn in (strict, plain):
        for _ in range(3):  # three votes for Ada, no decision yet; the verdict comes from the template scores below
            e = sample(people[0], rng)
            idn.add(e, 1.0, candidates(e, people))
    assert strict.decision_threshold == pytest.approx(THR + 0.05 * 2 / 4)
    between = [(0, "Ada", THR + 0.01), (1, "Bob", 0.1)]  # above one photo's threshold, below the template's
    assert strict.decide(between).label == UNKNOWN
    d = plain.decide(between)
    assert d.label == "Ada" and d.threshold == THR and d.effective_samples == pytest.approx(3.0)
    d = strict.decide([(0, "Ada", THR + 0.04), (1, "Bob", 0.1)])
    assert d.label == "Ada" and d.threshold == pytest.approx(THR + 0.025) and strict.revisions == 1
    # the exit band is measured from the template threshold as well
    assert strict.decide([(0, "Ada", THR + 0.025 - 0.01), (1, "Bob", 0.1)]) is None and strict.label == "Ada"
    assert strict.decide([(0, "Ada", THR + 0.025 - 0.03), (1, "Bob", 0.1)]).label == UNKNOWN


def test_template_threshold_interpolates_from_the_single_photo_threshold():
    from facegate.decide import TemplateThreshold
    from facegate.decide.tables import TemplatePoint

    pts = [TemplatePoint(k=k, far=f, threshold=t, tar=None, templates=1, people=1, impostor_pairs=1)
           for k, f, t in [(2, 1e-3, 0.80), (4, 1e-3, 0.84), (8, 1e-3, 0.83), (2, 1e-2, 0.70)]]
    tt = TemplateThreshold.from_points(0.75, 1e-3, pts)
    assert tt.ks == (1.0, 2.0, 4.0, 8.0)
    assert tt(1) == 0.75 and tt(0.5) == 0.75 and tt(1.5) == pytest.approx(0.775) and tt(3) == pytest.approx(0.82)
    assert tt(8) == tt(50) == 0.84  # never lower for more samples (sampling noise in the table), flat beyond it
    assert TemplateThreshold.from_points(0.75, 1e-4, pts) is None
    const = TemplateThreshold.constant(0.6)
    assert const(1) == const(7.5) == 0.6


def test_template_threshold_for_explicit_and_uncalibrated_settings(caplog):
    from facegate.decide import template_threshold

    assert template_threshold("dlib_resnet", 0.5, None)(9) == 0.5  # the user's explicit threshold is kept
    with caplog.at_level("WARNING"):
        tt = template_threshold("no-such-model", 0.9, 1e-3)
    assert tt(9) == 0.9 and "single-photo threshold" in caplog.text


def test_shipped_template_points_are_consistent():

    for embedder in ("mobilefacenet", "dlib_resnet"):
        _check_shipped_template_points(embedder)


def _check_shipped_template_points(embedder: str) -> None:
    from facegate.decide import template_threshold
    from facegate.decide.tables import load_operating_points, load_template_points

    pts = load_template_points(embedder)
    single = {p.far: p.threshold for p in load_operating_points(embedder)}
    assert {1e-1, 1e-2, 1e-3, 1e-4} <= {p.far for p in pts} <= set(single) and {p.k for p in pts} >= {2, 4, 8, 16}
    for far in {p.far for p in pts}:
        at = sorted((p for p in pts if p.far == far), key=lambda p: p.k)
        assert all(p.threshold > single[far] for p in at)  # a mean of faces needs a higher bar
        assert all(p.impostor_pairs * far >= 100 for p in at)
        tt = template_threshold(embedder, single[far], far)
        assert tt(1) == single[far] and np.all(np.diff([tt(n) for n in range(1, 20)]) >= 0)
    stricter = [next(p.threshold for p in pts if p.far == f and p.k == 4) for f in (1e-1, 1e-2, 1e-3, 1e-4)]
    assert stricter == sorted(stricter)  # lower FAR, higher threshold


def _synthetic_faces(n_people, per_person, seed, common=2.0, person=1.0, noise=0.8, dim=32):
    """Unit embeddings with a shared direction, a per-person offset and per-photo noise (like a face model's)."""
    rng = np.random.default_rng(seed)
    base = common * _unit(rng.standard_normal(dim))
    centres = person * rng.standard_normal((n_people, dim)) / np.sqrt(dim)
    labels = np.repeat(np.arange(n_people), per_person)
    emb = base + centres[labels] + noise * rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
    return _unit(emb).astype(np.float32), labels


def test_calibrate_templates_measures_the_rise_of_impostor_scores():
    from facegate.evaluate.calibration import calibrate
    from facegate.evaluate.templates import calibrate_templates, make_templates

    emb, labels = _synthetic_faces(120, 9, seed=0)
    temps, owners, members = make_templates(emb, labels, 3, 2, np.random.default_rng(0))
    assert len(temps) == 240 and all(len(set(labels[m])) == 1 and labels[m[0]] == o for m, o in zip(members, owners))
    assert not set(members[0]) & set(members[1])  # a person's templates are disjoint groups
    pts = calibrate_templates(emb, labels, ks=(2, 4, 8), fars=(1e-2, 1e-3), per_person=2, seed=0)
    single = {p.far: p.threshold for p in calibrate(emb, labels, "synthetic", (1e-2, 1e-3))}
    for far in (1e-2, 1e-3):
        thr = [p.threshold for p in sorted((p for p in pts if p.far == far), key=lambda p: p.k)]
        assert single[far] < thr[0] < thr[-1]  # averaging raises impostor scores: a higher bar, higher with k
    # the threshold is the quantile of the impostor pairs it was computed from
    p = next(p for p in pts if p.k == 4 and p.far == 1e-2)
    rng = np.random.default_rng(0)  # redraw the same groups: k=4 is the second k drawn from the seed's generator
    make_templates(emb, labels, 2, 2, rng)
    temps, owners, _ = make_templates(emb, labels, 4, 2, rng)
    s = temps @ emb.T
    imp = s[owners[:, None] != labels[None, :]]
    assert imp.size == p.impostor_pairs and int((imp > p.threshold).sum()) == int(np.floor(1e-2 * imp.size))
    assert 0.0 < p.tar <= 1.0
