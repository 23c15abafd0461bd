"""Estimate a site's impostor distribution and the operating points that hold there.

**The model.** At a site (one camera, one light, one kind of image) the impostor scores move as
a whole: on grey, small, blurred, noisy, compressed, dark, low-contrast, "night" and "CCTV"
renderings of 2,848 LFW photos and on CFP (``benchmarks/make_sites.py``), the site's thresholds
at survival 0.75 ... 0.01 are the shipped (LFW) ones plus a near-constant shift (-0.01 to +0.12),
and the spread of the site's impostor scores is within 5% of the shipped one (ratio 0.99-1.05,
RMS deviation 0.02). So the site's body is the shipped one moved and scaled,
``s_site = a + b * s_shipped``, and a site's few hundred pairs measure ``a`` and ``b``:

1. ``a, b`` from the mean and standard deviation of the site's impostor scores against the
   shipped ones (``facegate/data/impostor_stats.json``), after the pairs above the site's own
   FAR 1e-6 bar are left out as suspected duplicates (one person enrolled twice) and reported.
   Moments rather than body quantiles: with 30 people the 90% interval of the FAR the 1e-4
   threshold stands for reached 3.4-3.8x for moments against 5.8-6.4x for quantiles, and the
   duplicates that would move the moments are taken out first;
2. the spread ``b`` is shrunk towards 1 by how uncertain it is (a normal prior of sd
   :data:`SPREAD_PRIOR` = 0.05 around 1, two and a half times the RMS deviation measured over
   the sites): with 30 one-photo people a little under half of the measured change is kept,
   with 50 people of 1-3 photos about two thirds;
3. the tail moves less than the body. Measured on every degraded site with all its pairs, the
   threshold at FAR 1e-3 moves by 80-90% of the body's move, at 1e-4 by 30-70% (and in the grey
   one-room set of issue 22 by about 70% and 50%): the pairs that look alike because of who
   they are react less to the camera than the pairs that look alike because every photo shares
   it, and the more the body moved up, the larger the share of the move the tail keeps (at 1e-4: 31-55%
   of moves of +0.01-0.02, 53-71% of moves of +0.03-0.12). A site's few hundred pairs cannot see the
   tail, so it is a rule of the body's move: every shipped point ``t`` at FAR ``f`` moves to
   ``t + w(f) * (a + b t - t)`` with ``w = 1`` down to FAR 1e-2 and ``decay = TAIL_DECAY / (1 + move /
   TAIL_HALF)`` less per decade below it (:data:`TAIL_DECAY` 0.30, :data:`TAIL_HALF` 0.09; ``move``
   the rise of the impostor mean, none if it fell). Both were fitted with all pairs of six sites
   (grey-small, noise, JPEG 10, night, JPEG 5, grey-tiny) and checked on the others (CCTV, blur, grey
   low-contrast, grey, small, dark, CFP frontal and frontal-profile): with all their pairs the
   measured/stated FAR is then 0.86-1.17 at 1e-3 and 0.78-1.38 at 1e-4 (CCTV 0.86 / 0.79; the
   earlier fixed decay of 0.2 gave CCTV 1.13 / 1.70 and JPEG 5 1.06 / 1.46). Sites beyond the
   premise (a spread over :data:`MAX_SPREAD` or a move over :data:`MAX_MOVE`, as sigma-40 noise and
   night-and-dark renderings) are not adopted without ``force`` (:func:`trust`);
4. the k-photo template points move by the site's *template* map (:func:`template_maps`). A
   template of k photos scores the mean of its photos' scores divided by the norm ``r_k`` of their
   mean, so the part of the move every photo shares (the camera, the light: the location ``a``)
   reaches a template as ``a / r_k``, with ``r_k^2 = (1 + (k - 1) g) / k`` and ``g`` the site's mean
   same-person score, measured on the gallery's own people with several photos (a 50-person gallery
   of 1-3 photos has about 70 same-person pairs, which pin ``g`` down to a few hundredths). With all
   of a site's pairs this predicts the templates' extra move at the CCTV site (+0.015 for k = 2,
   +0.021 for k = 3, measured +0.017 and +0.023) and brings its 2- and 3-photo templates from
   1.8-2.9x to 1.3-2.1x at FAR 1e-3 and 1e-4; on the other sites templates come out the same or
   closer to 1x (night: 1.3x -> 1.15x at 1e-3). A gallery without same-person pairs (one photo each)
   has no templates to hold to these bars, and the single-photo map applies (``template_rule="single"``
   as before; ``"moments"``, each k's location from the gallery's own templates, was noisier with the
   15-20 templates of each k a small gallery has);
5. every statistic counts each *pair of people* once (a pair of photos is weighted ``1 / (k_a k_b)``,
   ``weigh="people"``): a person enrolled with three photos would otherwise count three times, and
   the bootstrap's units are people already. In 50-person galleries of 1-3 photos this cut the spread
   of the measured/stated FAR over galleries by about a third (lfw_night at 1e-3: sd 0.23 -> 0.15);
6. the adopted threshold at each FAR is the one whose FAR *averaged over the bootstrap replicates*
   is the stated FAR (``stated="expected"``, :func:`expected_thresholds`): a FAR is convex in the
   threshold, so a threshold that is right on average stands for more than its FAR on average. It
   is 0.001-0.005 above the estimate's own threshold at 30-50 people.

**Why not a tail fit.** A generalised Pareto fit to the site's own top scores uses only the
few pairs above a high threshold: with all of a site's millions of pairs it is as good as this
model (0.74-1.24 at 1e-3 ... 1e-5), but from a gallery of 30 one-photo people its measured/stated
FAR at 1e-4 was within 0.5-2x in 15-18% of galleries (this model: 92%) and ranged from under
0.01 to 40-80, and a duplicate enrolment wrecks it. Site galleries are small; the moved-and-scaled
model is what is adopted.

**Trust.** Each threshold's uncertainty comes from how many *people* the pairs saw: the estimate
is repeated on bootstrap resamples of the units (enrolled people, labelled people, stranger
photos), each pair weighted by how often its two units were drawn; the spread's replicates are
scaled to the posterior's width so the interval also carries what the prior does not know. The
site table states, for each FAR, the interval of the threshold and of the FAR the adopted
threshold stands for. :func:`trust` turns that into adopt / do not adopt without ``force``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.calibrate.pairs import GALLERY, LABELLED, SitePairs
from facegate.calibrate.stats import ShippedStats, survival_thresholds
from facegate.calibrate.table import REPORT_FARS, SitePoint, TemplateSitePoint
from facegate.errors import UsageError

FIT_PROBS = (0.75, 0.5, 0.25, 0.1)  # survival probabilities of the "body" method
METHODS = {
    "body": FIT_PROBS,  # body quantiles
    "iqr": (0.75, 0.5, 0.25),  # median and interquartile range
    "upper": (0.5, 0.25, 0.1, 0.05),  # the upper half only
    "shift": (0.5,),  # location only (b = 1)
    "moments": (),  # mean and standard deviation (after the suspected duplicates are left out)
}
DEFAULT_METHOD = "moments"
SPREAD_PRIOR: float | None = 0.05  # sd of the spread ratio b across sites (None: no shrinkage)
TAIL_FROM = 1e-2  # the tail moves with the body down to this FAR ...
TAIL_DECAY = 0.30  # ... and by this share less per decade below it where the site's mean has not moved up ...
TAIL_HALF = 0.09  # ... half that where it moved up by this much: decay = TAIL_DECAY / (1 + move / TAIL_HALF)
# (both fitted on six sites: grey-small, noise, JPEG 10, night and the stronger JPEG 5 and grey-tiny; see the docstring)
BOOTSTRAP = 200
LEVEL = 0.9  # two-sided level of the stated intervals
# The trust rule (see :func:`trust`). 30 one-photo people (435 pairs) must be enough to adopt; below
# 25 people the 90% interval at 1e-4 reached 2-4x (10 people: 3-7x) on the grey-small, CCTV and CFP
# sites, and the spread's prior makes small-sample intervals optimistic, so a floor stands beside it.
MIN_PEOPLE = 25  # enrolled and labelled people (stranger photos do not count: one stranger may be many photos)
MIN_PAIRS = 250
REFERENCE_FAR = 1e-4  # the FAR whose interval decides
MAX_FACTOR = 4.0  # the adopted threshold at REFERENCE_FAR may stand for at most 4x the stated FAR ...
MIN_FACTOR = 0.1  # ... and at least a tenth of it (stricter still would refuse enrolled people for nothing)
# The model's premise (see the module docstring): a site's impostor scores are the shipped ones moved
# (measured -0.01 to +0.12, the tail rule fitted on moves up to +0.10) and spread within about 5%.
# A site measured beyond these is outside what the rule was fitted on: its stated FAR would be an
# extrapolation (sigma-40 noise spreads 1.14x and moves +0.12, night-and-dark 1.23x and +0.30; there
# the adopted FAR 1e-4 threshold stood for 3-17x it), so it is not adopted without ``force``.
MAX_SPREAD = 1.10  # the spread ratio b as measured (before it is shrunk towards 1)
MAX_MOVE = 0.15  # how far the mean of the impostor scores moved up


@dataclass(frozen=True)
class AffineMap:
    """``t -> a + b * t``: shipped scores to site scores."""

    a: float
    b: float

    def __call__(self, t: float | np.ndarray) -> Any:
        return self.a + self.b * np.asarray(t) if isinstance(t, np.ndarray) else self.a + self.b * float(t)

    def inverse(self, s: float) -> float:
        return (float(s) - self.a) / self.b


def fit_map(site: Sequence[float] | np.ndarray, shipped: Sequence[float] | np.ndarray, method: str = DEFAULT_METHOD) -> AffineMap:
    """Least-squares ``site = a + b * shipped`` over matched thresholds (``shift``: b = 1)."""
    x, y = np.asarray(shipped, np.float64), np.asarray(site, np.float64)
    if method == "shift" or len(x) < 2 or np.ptp(x) <= 0:
        return AffineMap(float(np.mean(y - x)), 1.0)
    b, a = np.polyfit(x, y, 1)
    if not b > 0:  # a flat or inverted site body: no usable spread, keep the shipped one
        return AffineMap(float(np.mean(y - x)), 1.0)
    return AffineMap(float(a), float(b))


@dataclass(frozen=True)
class Curve:
    """A stack's FAR <-> threshold points (log10 FAR linear in the threshold between points and
    extended beyond the ends, unlike :class:`facegate.decide.FarCurve` which bounds there: an
    interval's end may lie past the calibrated range)."""

    log_fars: np.ndarray  # ascending
    thresholds: np.ndarray  # descending

    @classmethod
    def of(cls, points: Sequence[Any]) -> Curve:
        pts = sorted((p for p in points if p.far > 0), key=lambda p: p.far)
        if len(pts) < 2:
            raise UsageError("site calibration needs an operating-point table of at least two points")
        thr = np.minimum.accumulate(np.asarray([float(p.threshold) for p in pts]))
        return cls(np.log10([p.far for p in pts]), thr)

    def threshold(self, far: float) -> float:
        x = math.log10(far)
        xs, ts = self.log_fars, self.thresholds
        if x < xs[0]:
            return float(ts[0] + (ts[1] - ts[0]) / (xs[1] - xs[0]) * (x - xs[0]))
        if x > xs[-1]:
            return float(ts[-1] + (ts[-1] - ts[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1]))
        return float(np.interp(x, xs, ts))

    def far(self, threshold: float) -> float:
        xs, ts = self.log_fars[::-1], self.thresholds[::-1]  # thresholds ascending
        t = float(threshold)
        if t > ts[-1]:
            slope = (xs[-1] - xs[-2]) / max(ts[-1] - ts[-2], 1e-12)
            return float(10 ** (xs[-1] + slope * (t - ts[-1])))
        if t < ts[0]:
            slope = (xs[1] - xs[0]) / max(ts[1] - ts[0], 1e-12)
            return float(min(1.0, 10 ** (xs[0] + slope * (t - ts[0]))))
        return float(10 ** np.interp(t, ts, xs))


@dataclass
class SiteEstimate:
    """What the site's pairs say: the map, the site curve with intervals, the trust verdict."""

    stack: str
    method: str
    map: AffineMap
    points: list[SitePoint]
    template_points: list[TemplateSitePoint]
    counts: dict[str, int]
    site_body: dict[str, float]  # the site's measured thresholds at the fit probabilities
    fit_residual: float  # largest |measured - fitted| over the fit probabilities
    bootstrap: int
    level: float
    reliable: bool
    reasons: list[str]
    suspects: list[dict[str, Any]] = field(default_factory=list)
    genuine: dict[str, Any] = field(default_factory=dict)
    map_interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    spread_weight: float = 1.0  # how much of the measured spread change was kept (1: all)
    tail_decay: float = TAIL_DECAY  # the tail's share of the move lost per decade below TAIL_FROM (at the estimate's map)

    def point(self, far: float) -> SitePoint:
        for p in self.points:
            if math.isclose(p.far, far, rel_tol=1e-6):
                return p
        raise KeyError(f"no site point at FAR {far:g}")


MOMENTS = "moments"


@dataclass(frozen=True)
class _Point:
    far: float
    threshold: float


def mean_move(m: AffineMap, shipped_mean: float) -> float:
    """How far a site whose scores are ``m`` of the shipped ones moved the impostor mean (up is positive)."""
    return float(m(shipped_mean)) - float(shipped_mean)


def tail_decay_for(m: AffineMap, shipped_mean: float, decay: float = TAIL_DECAY, half: float | None = TAIL_HALF) -> float:
    """The share of the body's move the tail loses per decade below :data:`TAIL_FROM` at a site whose
    scores are ``m`` of the shipped ones: ``decay / (1 + move / half)``, with ``move`` how far the mean of
    the impostor scores moved up (a move down counts as none: the tail then moves least, the safe side).
    ``half=None``: a fixed decay, whatever the move (see the module docstring)."""
    if half is None:
        return float(decay)
    move = max(0.0, mean_move(m, shipped_mean))
    return float(decay) / (1.0 + move / float(half))


def tail_weight(far: float, decay: float = TAIL_DECAY) -> float:
    """How much of the body's move a threshold at ``far`` makes: all of it down to :data:`TAIL_FROM`,
    then ``decay`` less per decade (see the module docstring and :func:`tail_decay_for`)."""
    if far >= TAIL_FROM:
        return 1.0
    return max(0.0, 1.0 - decay * math.log10(TAIL_FROM / far))


def moved(m: AffineMap, threshold: float, far: float, decay: float) -> float:
    """A shipped threshold at ``far`` moved to the site: ``t + w(far) * (m(t) - t)``."""
    return float(threshold + tail_weight(far, decay) * (m(threshold) - threshold))


def summary(sorted_scores: np.ndarray, weights: np.ndarray | None, method: str) -> np.ndarray:
    """What a method measures of the site's scores: (mean, sd) for ``moments``, else the thresholds
    at the method's survival probabilities."""
    if method == MOMENTS:
        w = np.ones_like(sorted_scores) if weights is None else weights
        mean = float(np.average(sorted_scores, weights=w))
        return np.asarray([mean, math.sqrt(max(float(np.average((sorted_scores - mean) ** 2, weights=w)), 0.0))])
    return survival_thresholds(sorted_scores, METHODS[method], weights, presorted=True)


def shipped_summary(shipped: ShippedStats, method: str) -> np.ndarray:
    """The same summary of the shipped distribution."""
    if method == MOMENTS:
        return np.asarray([shipped.single.mean, shipped.single.sd])
    return np.asarray([shipped.single.at(p) for p in METHODS[method]])


def spread(site: np.ndarray, ship: np.ndarray, method: str) -> float:
    """The spread ratio ``b`` the summaries say (sd ratio, or the slope through the matched thresholds)."""
    if method == MOMENTS:
        return float(site[1] / ship[1]) if ship[1] > 0 and site[1] > 0 else 1.0
    return fit_map(site, ship, method).b


def map_from(site: np.ndarray, ship: np.ndarray, method: str, b: float | None = None) -> AffineMap:
    """The map that takes the shipped summary to the site's, with spread ``b`` (default: the one the
    summaries say) and the location fitted for that spread."""
    b = spread(site, ship, method) if b is None else float(b)
    if method == MOMENTS:
        return AffineMap(float(site[0] - b * ship[0]), b)
    return AffineMap(float(np.mean(site - b * ship)), b)


def trust(people: int, pairs: int, far_ratio: tuple[float, float], spread_measured: float = 1.0,
          move: float = 0.0) -> tuple[bool, list[str]]:
    """Whether a site estimate may be adopted without ``--force``, and why not.

    Three conditions, each a reason when it fails: at least :data:`MIN_PEOPLE` people (fewer
    faces cannot show a site's spread: a pair's score depends on both people, so 10 people are
    10 draws, not 45), at least :data:`MIN_PAIRS` impostor pairs, and the bootstrap interval of
    the FAR the adopted :data:`REFERENCE_FAR` threshold stands for at most :data:`MAX_FACTOR`
    times it (the side that lets impostors in) and at least :data:`MIN_FACTOR` times it (the
    side that refuses enrolled people: the interval of a shift measured on few people is wider
    on that side in log terms). Beside them the model's premise: a measured spread ratio above
    :data:`MAX_SPREAD` or a move of the mean above :data:`MAX_MOVE` is outside what the tail rule was
    fitted on (a narrower spread or a move down is not: the rule then errs on the strict side)."""
    reasons = []
    if people < MIN_PEOPLE:
        reasons.append(f"only {people} people seen (at least {MIN_PEOPLE} needed: enrol more people, or add a "
                       f"labelled folder)")
    if pairs < MIN_PAIRS:
        reasons.append(f"only {pairs} impostor pairs (at least {MIN_PAIRS} needed)")
    lo, hi = far_ratio
    if not (lo >= MIN_FACTOR and hi <= MAX_FACTOR):
        reasons.append(f"the threshold for FAR {REFERENCE_FAR:g} may stand for {lo:.2g}x to {hi:.2g}x that rate "
                       f"({100 * LEVEL:.0f}% interval over people; {MIN_FACTOR:g}x to {MAX_FACTOR:g}x allowed)")
    if spread_measured > MAX_SPREAD:
        reasons.append(f"the site's impostor scores spread {spread_measured:.2f}x as widely as the shipped ones (the "
                       f"model was fitted on sites within 1.05x; above {MAX_SPREAD:g}x its stated FARs are guesses)")
    if move > MAX_MOVE:
        reasons.append(f"the site's impostor scores moved up by {move:+.3f} (the model was fitted on moves up to "
                       f"+0.12; above +{MAX_MOVE:g} its stated FARs are guesses)")
    return not reasons, reasons


WEIGH = ("people", "pairs")
DEFAULT_WEIGH = "people"
STATED = ("expected", "estimate")
DEFAULT_STATED = "expected"


def expected_thresholds(rep_t: np.ndarray, fars: Sequence[float]) -> list[float]:
    """For each FAR (descending): the threshold at which the FAR averaged over the bootstrap replicates'
    site curves (rows of ``rep_t``, thresholds at ``fars``) is that FAR. A FAR is convex in the threshold
    (log-linear), so the replicates' spread makes the estimate's own threshold stand for more than its
    FAR on average; this threshold states the expected FAR truly."""
    lf = np.log10(np.asarray(fars, np.float64))
    rows = np.maximum.accumulate(np.asarray(rep_t, np.float64), axis=1) + np.arange(rep_t.shape[1]) * 1e-9
    grid = np.linspace(float(rows.min()) - 0.1, float(rows.max()) + 0.1, 4000)
    mean_far = np.zeros_like(grid)
    for row in rows:
        y = np.interp(grid, row, lf)
        lo, hi = grid < row[0], grid > row[-1]  # past the ends: the end segments extended (a FAR never above 1)
        y[lo] = np.minimum(0.0, lf[0] + (lf[1] - lf[0]) / max(row[1] - row[0], 1e-12) * (grid[lo] - row[0]))
        y[hi] = lf[-1] + (lf[-1] - lf[-2]) / max(row[-1] - row[-2], 1e-12) * (grid[hi] - row[-1])
        mean_far += 10.0**y
    mean_log = np.log10(np.maximum(mean_far / len(rows), 1e-300))  # decreasing along the grid
    return [float(np.interp(-x, -mean_log, grid)) for x in lf]


TEMPLATE_RULES = ("single", "genuine", "moments")
DEFAULT_TEMPLATE_RULE = "genuine"
MIN_GENUINE_PAIRS = 10  # the genuine rule needs this many same-person pairs, else the single-photo rule applies
MIN_TEMPLATES = 10  # the moments rule needs this many k-photo templates of enrolled people


def template_maps(fmap: AffineMap, pairs: SitePairs, shipped: ShippedStats, ks: set[int], rule: str) -> dict[int, AffineMap]:
    """The map of each template size k (shipped template scores -> site template scores); a k left out
    moves by the single-photo map. ``single``: every k by the single-photo map. ``genuine``: a k-photo
    template's score is the mean of its photos' scores divided by the norm ``r_k`` of their mean
    (``r_k^2 = (1 + (k - 1) g) / k``, ``g`` the site's mean same-person score), so the site's common move
    ``a`` reaches a template as ``a / r_k``: the map ``(a / r_k, b)``. ``moments``: each k's location
    from the mean of the gallery's own k-photo templates against other people's photos."""
    if rule not in TEMPLATE_RULES:
        raise UsageError(f"unknown template rule {rule!r}; use one of {', '.join(TEMPLATE_RULES)}")
    if rule == "single" or not ks:
        return {}
    out: dict[int, AffineMap] = {}
    if rule == "moments":
        for k in ks:
            got = pairs.templates.get(k)
            body = shipped.templates.get(k)
            if got is None or body is None or np.unique(got[1]).size < MIN_TEMPLATES:
                continue
            out[k] = AffineMap(float(np.mean(got[0])) - fmap.b * body.mean, fmap.b)
        return out
    if pairs.genuine.size < MIN_GENUINE_PAIRS:
        return {}
    g = float(np.clip(np.mean(pairs.genuine), 0.0, 1.0))
    return {k: AffineMap(fmap.a / math.sqrt((1 + (k - 1) * g) / k), fmap.b) for k in ks if k > 1}


def estimate_site(
    pairs: SitePairs,
    shipped: ShippedStats,
    points: Sequence[Any],
    template_points: Sequence[Any] = (),
    *,
    method: str = DEFAULT_METHOD,
    bootstrap: int = BOOTSTRAP,
    level: float = LEVEL,
    spread_prior: float | None = SPREAD_PRIOR,
    tail_decay: float | None = None,
    tail_half: float | None = TAIL_HALF,
    template_rule: str = DEFAULT_TEMPLATE_RULE,
    stated: str = DEFAULT_STATED,
    weigh: str = DEFAULT_WEIGH,
    seed: int = 0,
) -> SiteEstimate:
    """The site's operating points from its pairs (see the module docstring).

    ``points`` / ``template_points``: the shipped table the statistics belong to (objects with
    ``far``, ``threshold``, ``tar``; template points also ``k``). Raises :class:`UsageError`
    when the statistics describe another table (a user recalibration) or there are no pairs.
    """
    if method not in METHODS:
        raise UsageError(f"unknown site-calibration method {method!r}; use one of {', '.join(METHODS)}")
    if stated not in STATED:
        raise UsageError(f"unknown stated-FAR rule {stated!r}; use one of {', '.join(STATED)}")
    if not shipped.matches(points):
        raise UsageError(f"the operating-point table in use for {shipped.stack} is not the one its impostor statistics "
                         "were measured with (a recalibrated table?): site calibration needs the shipped table")
    if pairs.pairs < 2:
        raise UsageError("no impostor pairs: site calibration needs photos of at least two different people")
    curve = Curve.of(points)
    ship_q = shipped_summary(shipped, method)

    order = np.argsort(pairs.scores, kind="stable")
    s_sorted = pairs.scores[order].astype(np.float64)
    a_sorted, b_sorted = pairs.a[order], pairs.b[order]
    w_pair = pairs.pair_weights()[order] if weigh == "people" else None
    site = summary(s_sorted, w_pair, method)
    fmap = map_from(site, ship_q, method)

    # suspected duplicates: pairs above the site's own FAR 1e-6 threshold; refit without them
    decay0 = TAIL_DECAY if tail_decay is None else float(tail_decay)

    def decay_of(m: AffineMap) -> float:
        return tail_decay_for(m, shipped.single.mean, decay0, tail_half)

    bar = moved(fmap, curve.threshold(1e-6), 1e-6, decay_of(fmap))
    hi = np.flatnonzero(s_sorted > bar)
    suspects: list[dict[str, Any]] = []
    if hi.size:
        seen: dict[tuple[int, int], float] = {}
        for i in hi:
            u, v = sorted((int(a_sorted[i]), int(b_sorted[i])))
            seen[(u, v)] = max(seen.get((u, v), -1.0), float(s_sorted[i]))
        suspects = [{"a": pairs.names[u], "b": pairs.names[v], "source_a": pairs.unit_source[u],
                     "source_b": pairs.unit_source[v], "score": round(s, 4)} for (u, v), s in sorted(seen.items(), key=lambda x: -x[1])]
        n_units = np.int64(pairs.units)
        key = np.minimum(a_sorted, b_sorted).astype(np.int64) * n_units + np.maximum(a_sorted, b_sorted)
        keep = ~np.isin(key, np.asarray([u * n_units + v for u, v in seen], dtype=np.int64))
        s_sorted, a_sorted, b_sorted = s_sorted[keep], a_sorted[keep], b_sorted[keep]
        w_pair = None if w_pair is None else w_pair[keep]
        site = summary(s_sorted, w_pair, method)

    # bootstrap over units: a pair's weight is the product of its two units' draw counts
    rng = np.random.default_rng(seed)
    units = pairs.units
    reps: list[np.ndarray] = []
    for _ in range(bootstrap):
        w_unit = np.bincount(rng.integers(0, units, units), minlength=units).astype(np.float64)
        w = w_unit[a_sorted] * w_unit[b_sorted] * (1.0 if w_pair is None else w_pair)
        if w.sum() > 0:
            reps.append(summary(s_sorted, w, method))
    # the spread shrunk towards the shipped one by how uncertain it is (normal prior of sd SPREAD_PRIOR
    # around 1, normal sampling error of the bootstrap's variance): the posterior mean keeps a share
    # ``weight`` of the measured change, and the replicates are spread by the posterior sd (sqrt(weight)
    # of the sampling sd), so the interval also carries what the prior does not know
    b_hat = spread(site, ship_q, method)
    b_reps = np.asarray([spread(r, ship_q, method) for r in reps])
    weight: float = 1.0
    if spread_prior is not None and method != "shift" and len(reps) > 1:
        var_b = float(np.var(b_reps))
        weight = spread_prior**2 / (spread_prior**2 + var_b) if var_b > 0 else 1.0
    b_post = 1.0 + weight * (b_hat - 1.0)
    fmap = map_from(site, ship_q, method, b_post)
    maps = [map_from(r, ship_q, method, b_post + math.sqrt(weight) * (br - b_hat)) for r, br in zip(reps, b_reps)]
    residual = float(np.max(np.abs(site - fmap(ship_q)))) if method != MOMENTS else 0.0
    alpha = (1 - level) / 2

    # the site curve of the estimate and of each replicate (every shipped point moved; the tail less)
    order_f = sorted(points, key=lambda q: -q.far)
    t_ship = [curve.threshold(p.far) for p in order_f]

    decay = decay_of(fmap)

    def site_curve(m: AffineMap) -> list[float]:
        d = decay_of(m)  # each replicate's tail moves by its own shift's rule: the interval carries that too
        t = [moved(m, x, p.far, d) for x, p in zip(t_ship, order_f)]
        return np.maximum.accumulate(np.asarray(t)).tolist()  # a lower FAR is never a lower bar

    est_t = site_curve(fmap)
    rep_t = np.asarray([site_curve(m) for m in maps]) if maps else np.asarray([est_t])
    correction = np.zeros(len(est_t))
    if stated == "expected" and maps:  # thresholds whose FAR, averaged over what the pairs leave unknown, is the stated one
        expected = expected_thresholds(rep_t, [p.far for p in order_f])
        correction = np.asarray(expected) - np.asarray(est_t)
        est_t = np.maximum.accumulate(np.asarray(expected)).tolist()
    rep_curves = [Curve.of([_Point(p.far, x) for p, x in zip(order_f, row)]) for row in rep_t] if maps else []
    site_points = []
    ref_ratio = (float("nan"), float("nan"))
    for col, p in enumerate(order_f):
        t = est_t[col]
        # the FAR the adopted threshold t stands for if the site were replicate r
        far_reps = np.asarray([c.far(t) for c in rep_curves]) if rep_curves else np.asarray([p.far])
        lo_t, hi_t = np.quantile(rep_t[:, col], [alpha, 1 - alpha])
        lo_f, hi_f = np.quantile(far_reps, [alpha, 1 - alpha])
        site_points.append(SitePoint(far=float(p.far), threshold=float(t), shipped_threshold=float(p.threshold),
                                     low=float(lo_t), high=float(hi_t), far_low=float(lo_f), far_high=float(hi_f),
                                     tar=None if p.tar is None else float(p.tar)))
        if math.isclose(p.far, REFERENCE_FAR, rel_tol=1e-6):
            ref_ratio = (float(lo_f / p.far), float(hi_f / p.far))
    if math.isnan(ref_ratio[0]):
        raise UsageError(f"the operating-point table has no point at FAR {REFERENCE_FAR:g}: the trust rule needs it")

    tmaps = template_maps(fmap, pairs, shipped, {int(tp.k) for tp in template_points}, template_rule)
    log_f = np.log10([p.far for p in order_f])[::-1]  # ascending, for the correction at a template point's FAR

    def corrected(far: float) -> float:
        return float(np.interp(math.log10(far), log_f, correction[::-1]))

    tpoints = [TemplateSitePoint(k=int(tp.k), far=float(tp.far),
                                 threshold=moved(tmaps.get(int(tp.k), fmap), float(tp.threshold), float(tp.far), decay)
                                 + corrected(float(tp.far)),
                                 tar=None if tp.tar is None else float(tp.tar)) for tp in template_points]
    counts = pairs.counts()
    counts["impostor_pairs_used"] = int(s_sorted.size)
    people = pairs.people((GALLERY, LABELLED))
    spread_seen = b_hat if method != "shift" else 1.0
    reliable, reasons = trust(people, int(s_sorted.size), ref_ratio, spread_seen, mean_move(fmap, shipped.single.mean))

    genuine: dict[str, Any] = {"pairs": int(pairs.genuine.size)}
    if pairs.genuine.size:
        genuine["tar"] = {f"{p.far:g}": round(float((pairs.genuine > p.threshold).mean()), 4)
                          for p in site_points if any(math.isclose(p.far, f, rel_tol=1e-6) for f in REPORT_FARS)}
        genuine["people"] = int(np.unique(pairs.genuine_unit).size)
    map_iv = {}
    if maps:
        aa, bb = np.asarray([m.a for m in maps]), np.asarray([m.b for m in maps])
        qa, qb = np.quantile(aa, [alpha, 1 - alpha]), np.quantile(bb, [alpha, 1 - alpha])
        map_iv = {"a": (float(qa[0]), float(qa[1])), "b": (float(qb[0]), float(qb[1]))}
    return SiteEstimate(
        stack=shipped.stack, method=method, map=fmap, points=site_points, template_points=tpoints, counts=counts,
        site_body=({"mean": round(float(site[0]), 5), "sd": round(float(site[1]), 5)} if method == MOMENTS else
                   {f"{p:g}": round(float(t), 5) for p, t in zip(METHODS[method], site)}), fit_residual=residual,
        bootstrap=len(maps), level=level, reliable=reliable, reasons=reasons, suspects=suspects, genuine=genuine,
        map_interval=map_iv, spread_weight=weight, tail_decay=decay,
    )


__all__ = [
    "BOOTSTRAP", "DEFAULT_METHOD", "FIT_PROBS", "LEVEL", "MAX_FACTOR", "MAX_MOVE", "MAX_SPREAD", "METHODS", "MIN_FACTOR",
    "MIN_PAIRS", "MIN_PEOPLE", "REFERENCE_FAR", "AffineMap", "Curve", "SiteEstimate",
    "TAIL_DECAY", "TAIL_FROM", "TAIL_HALF", "estimate_site", "fit_map", "tail_decay_for", "tail_weight", "trust",
]
