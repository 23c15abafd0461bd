"""Presentation-attack detection (PAD) evaluation, the ISO/IEC 30107-3 way, and head fitting.

Metrics (ISO/IEC 30107-3): APCER, the share of attack presentations accepted as live;
BPCER, the share of live presentations refused; ACER, their mean; BPCER at the
thresholds where APCER is 1% and 5%. Intervals are 95% percentile intervals from
resampling *people* with replacement (all of a person's frames go in or out together),
because frames of one person are not independent: the nine people of nuaa_dev are the
sample size that matters, not its 700 frames.

Protocol on nuaa_dev (``--fit-session``/``--score-session``): fit the head on one session, score the other.
``--blur-live`` and ``--sharpen-attack`` perturb the *scored* session the way real cameras
and printers differ (live frames blurred, attack frames sharpened), so a cue that only
works because NUAA's prints are blurrier is caught. Faces are found by facegate's own
detector on the (perturbed) frames; the subject's face is judged (:func:`pick_subject`).

Bursts are consecutive frames of one take (same person, glasses, pose, session, in
frame order), cut without overlap as the gate check cuts them; a burst whose face
jumps between frames is refused (counted as not accepted, listed separately).

Run through the CLI: ``facegate eval pad ../shared/datasets/nuaa_dev --fit-session 1
--score-session 2 [--blur-live 1] [--sharpen-attack] [--cue-table] [--plot det.png]`` (this
runner's :func:`nuaa_protocol`); ``facegate eval pad DIR`` scores the model in force on a
folder of ``live/`` and ``attack/`` captures (:func:`score_model`); ``facegate liveness fit
--live DIR --attack DIR [--adopt]`` fits a site's own model (:func:`fit_site`, figures from
:func:`cross_validate`); ``facegate liveness fit --nuaa DIR --out FILE`` writes the shipped
model (:func:`fit_nuaa_model`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facegate.errors import DatasetError, UsageError
from facegate.liveness.cues import CUES_VERSION, PAIR_CUES, STILL_CUES, Frame, pair_cues, still_cues
from facegate.liveness.detector import aggregate, face_jump
from facegate.liveness.head import DEFAULT_GAP, LinearHead, LivenessModel, PadOperatingPoint, fit_head
from facegate.types import Face

log = logging.getLogger(__name__)

# ID_glasses_pos_session_pic.jpg
NUAA_NAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d+)\.jpg$")
_TRAILING_NUMBER = re.compile(r"^(.*?)[_\-. ]?(\d+)$")

# The shipped recipe's cues (chosen by the cross-session measurements in the README: the
# skin's relative redness carried best of the still cues; the share of pixels around the
# face that follow its motion best of the burst cues; the others measured and left out).
STILL_HEAD_CUES: tuple[str, ...] = ("red_rel",)
BURST_HEAD_CUES: tuple[str, ...] = ("red_rel", "follow_near")
DEFAULT_BURST = 3  # the gate check sends bursts of 3 frames


@dataclass(frozen=True)
class Sample:
    """One frame of a labelled PAD set: who is shown, whether it is an attack, which take it belongs to."""

    path: Path
    person: str
    attack: bool
    session: str
    take: str  # frames of one take, ordered by ``index``, form bursts
    index: int


def nuaa_samples(root: Path) -> list[Sample]:
    """Every frame of the nuaa_dev layout (``real/<person>/``, ``attack/<person>/``), in take order."""
    if not (root / "real").is_dir() or not (root / "attack").is_dir():
        raise DatasetError(f"{root}: not the nuaa_dev layout (real/<person>/ and attack/<person>/ expected)")
    out = []
    for kind in ("real", "attack"):
        for f in sorted((root / kind).glob("*/*.jpg")):
            m = NUAA_NAME.match(f.name)
            if not m:
                continue
            pid, glasses, pos, session, pic = m.groups()
            out.append(
                Sample(
                    path=f,
                    person=pid,
                    attack=kind == "attack",
                    session=str(int(session)),
                    take=f"{kind}/{pid}_{glasses}_{pos}_{session}",
                    index=int(pic),
                )
            )
    if not out:
        raise DatasetError(f"{root}: no frames named ID_glasses_pos_session_pic.jpg")
    return sorted(out, key=lambda s: (s.take, s.index))


def folder_samples(live: Path, attack: Path) -> list[Sample]:
    """Frames of a site's own captures: every image under ``live`` and ``attack``.

    A take (frames that form bursts) is a sub-folder, or files whose names differ only by a
    trailing frame number (``door_0001.jpg``, ``door_0002.jpg``); a person is the first
    sub-folder level when there is one, the same name under ``live`` and ``attack`` being the
    same person (intervals resample people, with their live and attack presentations together;
    cross-validation holds them out together), else the take (``live:<take>``, ``attack:<take>``).
    """
    from facegate.image import IMAGE_SUFFIXES

    out = []
    for root, is_attack in ((live, False), (attack, True)):
        if not root.is_dir():
            raise DatasetError(f"{root}: not a folder of {'attack' if is_attack else 'live'} captures")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{root}: no images found")
        for f in files:
            rel = f.relative_to(root)
            m = _TRAILING_NUMBER.match(f.stem)
            stem, index = (m.group(1), int(m.group(2))) if m else (f.stem, 0)
            take = "/".join(rel.parts[:-1] + (stem,))
            kind = "attack" if is_attack else "live"
            person = rel.parts[0] if len(rel.parts) > 1 else f"{kind}:{take}"
            out.append(Sample(f, person, is_attack, "site", f"{kind}/{take}", index))
    return sorted(out, key=lambda s: (s.take, s.index, str(s.path)))


# -- perturbations ------------------------------------------------------------------------------


def blur(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels at 640x480 (scaled with the image's width): a softer camera."""
    s = sigma * image.shape[1] / 640.0
    return cv2.GaussianBlur(image, (0, 0), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REFLECT)


def sharpen(image: np.ndarray, radius: float = 2.0, percent: float = 150.0) -> np.ndarray:
    """Unsharp mask (Gaussian radius ``radius`` px, amount ``percent``%, no threshold): a crisper printer.

    The same operation as Pillow's ``ImageFilter.UnsharpMask(radius, percent, threshold=0)``:
    ``image + percent/100 * (image - blurred)``, clipped to 0..255.
    """
    img = image.astype(np.float32)
    soft = cv2.GaussianBlur(img, (0, 0), sigmaX=radius, sigmaY=radius, borderType=cv2.BORDER_REFLECT)
    out = img + (percent / 100.0) * (img - soft)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Perturbation:
    """How the scored frames are changed: live frames blurred, attack frames sharpened."""

    blur_live: float = 0.0  # Gaussian sigma in pixels at 640x480; 0 = none
    sharpen_attack: bool = False

    def apply(self, image: np.ndarray, attack: bool) -> np.ndarray:
        if attack and self.sharpen_attack:
            return sharpen(image)
        if not attack and self.blur_live > 0:
            return blur(image, self.blur_live)
        return image

    def tag(self, attack: bool) -> str:
        if attack and self.sharpen_attack:
            return "sharpen2x150"
        if not attack and self.blur_live > 0:
            return f"blur{self.blur_live:g}"
        return "clean"

    def describe(self) -> str:
        parts = []
        if self.blur_live > 0:
            parts.append(f"live frames blurred (Gaussian sigma {self.blur_live:g} px at 640x480)")
        if self.sharpen_attack:
            parts.append("attack frames sharpened (unsharp mask radius 2, 150%)")
        return "; ".join(parts) or "unperturbed"


# -- cues of a labelled set -----------------------------------------------------------------


@dataclass
class FrameCues:
    """What was measured on one frame: its face (or none) and its cues, and the pair cues
    with the next frame of its take."""

    sample: Sample
    face: Face | None
    shape: tuple[int, int]
    still: dict[str, float] = field(default_factory=dict)
    pair_next: dict[str, float] | None = None


def _face_json(f: Face | None) -> Any:
    if f is None:
        return None
    return {"box": [float(v) for v in f.box], "landmarks": f.landmarks.tolist(), "scheme": f.scheme, "score": f.score}


def _face_from(d: Any) -> Face | None:
    if d is None:
        return None
    return Face(
        box=np.array(d["box"], np.float32),
        landmarks=np.array(d["landmarks"], np.float32),
        score=float(d["score"]),
        scheme=str(d["scheme"]),
    )


def pick_subject(faces: Sequence[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The face a PAD protocol judges: the gate's own choice (:func:`facegate.pipeline.pick_face`,
    ``largest``: the largest of the faces the detector is nearly as sure of as its best), or
    None without a face. The largest alone would sometimes be a hand holding the print
    (detected with a low score); the best alone sometimes a small face in the background."""
    from facegate.pipeline import pick_face

    return pick_face(list(faces), image_shape, "largest") if faces else None


def measure(
    samples: Sequence[Sample],
    detect: Callable[[np.ndarray], list[Face]],
    perturbation: Perturbation = Perturbation(),
    cache: Path | None = None,
    detector_tag: str = "",
    progress: bool = True,
) -> list[FrameCues]:
    """Detect the face of every frame and measure its cues (and the pair cues with the next
    frame of its take). ``cache`` (a folder outside the repository) keeps the results by
    file, perturbation, detector and cue version, so repeated runs skip the work."""
    from facegate.image import load_image

    store: dict[str, Any] = {}
    cache_file = None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        cache_file = cache / f"pad_cues_v{CUES_VERSION}_subject_{re.sub(r'[^A-Za-z0-9]+', '_', detector_tag)}.json"
        if cache_file.exists():
            store = json.loads(cache_file.read_text())
    by_take: dict[str, list[Sample]] = {}
    for s in samples:
        by_take.setdefault(s.take, []).append(s)
    it: Iterable[list[Sample]] = by_take.values()
    if progress:
        from tqdm import tqdm

        it = tqdm(list(it), desc="PAD takes", unit="take")
    out: list[FrameCues] = []
    dirty = False
    for take in it:
        take = sorted(take, key=lambda s: s.index)
        prepared: dict[int, Frame] = {}

        def prepared_frame(i: int, face: Face, take: list[Sample] = take, prepared: dict[int, Frame] = prepared) -> Frame:
            if i not in prepared:
                img = perturbation.apply(load_image(take[i].path), take[i].attack)
                prepared[i] = Frame(img, face)
            return prepared[i]

        recs = []
        for i, s in enumerate(take):
            key = f"{s.path}|{perturbation.tag(s.attack)}"
            rec = store.get(key)
            if rec is None:
                img = perturbation.apply(load_image(s.path), s.attack)
                face = pick_subject(detect(img), img.shape)
                rec = {"face": _face_json(face), "shape": list(img.shape[:2]), "still": None, "pair_next": None}
                if face is not None:
                    prepared[i] = Frame(img, face)
                    rec["still"] = still_cues(prepared[i])
                store[key] = rec
                dirty = True
            recs.append(rec)
        faces = [_face_from(r["face"]) for r in recs]
        for i in range(len(take) - 1):
            fa, fb = faces[i], faces[i + 1]
            if fa is not None and fb is not None and recs[i].get("pair_next") is None:
                recs[i]["pair_next"] = pair_cues(prepared_frame(i, fa), prepared_frame(i + 1, fb))
                dirty = True
        for s, rec, face in zip(take, recs, faces):
            out.append(FrameCues(s, face, (int(rec["shape"][0]), int(rec["shape"][1])), rec["still"] or {}, rec.get("pair_next")))
    if cache_file is not None and dirty:
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(store, allow_nan=True))
        tmp.replace(cache_file)
    return out


# -- examples: stills and bursts ------------------------------------------------------------------


@dataclass
class Example:
    """One presentation to judge: a still frame or a burst of consecutive frames."""

    person: str
    attack: bool
    session: str
    cues: dict[str, float]
    frames: int
    refused: str | None = None  # a burst refused before scoring (face jumped, no face)


def still_examples(frames: Sequence[FrameCues]) -> tuple[list[Example], int]:
    """One example per frame with a face; the number of frames without one."""
    out = [Example(f.sample.person, f.sample.attack, f.sample.session, dict(f.still), 1) for f in frames if f.face]
    return out, sum(1 for f in frames if f.face is None)


def burst_examples(frames: Sequence[FrameCues], k: int, stride: int | None = None, refuse_jumps: bool = True) -> list[Example]:
    """Bursts of ``k`` consecutive frames of one take, every ``stride`` frames (default ``k``:
    no overlap). Frames without a face are skipped inside a burst (counted, not fatal); a
    burst whose face jumps is refused, as the detector refuses it (``refuse_jumps`` False:
    scored all the same, to show what the cues alone do)."""
    takes: dict[str, list[FrameCues]] = {}
    for f in frames:
        takes.setdefault(f.sample.take, []).append(f)
    out = []
    for take in takes.values():
        take = sorted(take, key=lambda f: f.sample.index)
        for i in range(0, len(take) - k + 1, stride or k):
            part = take[i : i + k]
            s = part[0].sample
            kept = [f for f in part if f.face is not None]
            if not kept:
                out.append(Example(s.person, s.attack, s.session, {}, 0, refused="no_face"))
                continue
            jumped = (
                refuse_jumps
                and any(
                    face_jump(a.face, b.face, a.shape, b.shape)  # type: ignore[arg-type]
                    for a, b in zip(kept, kept[1:])
                )
            )
            if jumped:
                out.append(Example(s.person, s.attack, s.session, {}, len(kept), refused="face_jumped"))
                continue
            # pair cues link consecutive frames with faces; across a missing face they are not measured
            pairs = [a.pair_next for a, b in zip(part, part[1:]) if a.face is not None and b.face is not None]
            cues = aggregate([f.still for f in kept], [p for p in pairs if p])
            out.append(Example(s.person, s.attack, s.session, cues, len(kept)))
    return out


def cue_matrix(examples: Sequence[Example], cues: Sequence[str]) -> np.ndarray:
    return np.array([[e.cues.get(c, math.nan) for c in cues] for e in examples], dtype=np.float64).reshape(len(examples), len(cues))


# -- metrics ------------------------------------------------------------------------------------


def apcer_bpcer(scores: np.ndarray, attack: np.ndarray, threshold: float) -> tuple[float, float]:
    """(APCER, BPCER) at ``threshold``: attacks scoring >= threshold are accepted as live,
    live presentations scoring below it refused. NaN scores (refused before scoring) are
    never accepted."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(attack, dtype=bool)
    accepted = np.where(np.isnan(s), False, s >= threshold)
    apcer = float(accepted[a].mean()) if a.any() else math.nan
    bpcer = float((~accepted[~a]).mean()) if (~a).any() else math.nan
    return apcer, bpcer


def auc(scores: np.ndarray, attack: np.ndarray) -> float:
    """Probability that a live presentation outscores an attack (ties count half); refused
    presentations (NaN) rank lowest."""
    from scipy.stats import rankdata

    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    a = np.asarray(attack, dtype=bool)
    n_live, n_att = int((~a).sum()), int(a.sum())
    if n_live == 0 or n_att == 0:
        return math.nan
    r = rankdata(s)
    return float((r[~a].sum() - n_live * (n_live + 1) / 2) / (n_live * n_att))


def bpcer_at_apcer(scores: np.ndarray, attack: np.ndarray, apcer: float) -> tuple[float, float]:
    """(BPCER, threshold) at the lowest threshold whose APCER is at most ``apcer``."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    a = np.asarray(attack, dtype=bool)
    att = np.sort(s[a])[::-1]
    n = len(att)
    allowed = int(math.floor(apcer * n + 1e-9))  # attacks that may be accepted
    # threshold just above the (allowed+1)-th highest attack score
    t = float(np.nextafter(att[allowed], np.inf)) if allowed < n else float(att[-1])
    return float((s[~a] < t).mean()), t


def det_curve(scores: np.ndarray, attack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(APCER, BPCER) at every distinct threshold, APCER descending."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    a = np.asarray(attack, dtype=bool)
    ts = np.unique(s[np.isfinite(s)])
    ap = np.array([(s[a] >= t).mean() for t in ts])
    bp = np.array([(s[~a] < t).mean() for t in ts])
    return ap, bp


def people_intervals(
    persons: Sequence[str],
    scores: np.ndarray,
    attack: np.ndarray,
    threshold: float,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of APCER, BPCER and ACER from resampling people (not frames)
    with replacement: each draw takes all presentations of the people drawn."""
    rng = np.random.default_rng(seed)
    persons_arr = np.asarray(persons)
    people = np.unique(persons_arr)
    idx = {p: np.flatnonzero(persons_arr == p) for p in people}
    a = np.asarray(attack, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    draws: dict[str, list[float]] = {"apcer": [], "bpcer": [], "acer": []}
    for _ in range(n):
        pick = rng.choice(people, len(people), replace=True)
        sel = np.concatenate([idx[p] for p in pick])
        if a[sel].all() or (~a[sel]).all():
            continue
        ap, bp = apcer_bpcer(s[sel], a[sel], threshold)
        draws["apcer"].append(ap)
        draws["bpcer"].append(bp)
        draws["acer"].append((ap + bp) / 2)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {k: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if v else (math.nan, math.nan) for k, v in draws.items()}


@dataclass
class PadReport:
    """The standard's figures for one set of scored presentations at one threshold."""

    label: str
    threshold: float
    apcer: float
    bpcer: float
    acer: float
    auc: float
    bpcer_at_apcer_1: float
    bpcer_at_apcer_5: float
    intervals: dict[str, tuple[float, float]]
    n_live: int
    n_attack: int
    people: int
    refused_live: int = 0
    refused_attack: int = 0
    no_face_frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def line(self) -> str:
        ia, ib = self.intervals["apcer"], self.intervals["bpcer"]
        extra = ""
        if self.refused_live or self.refused_attack:
            extra = f"  refused before scoring: live {self.refused_live}, attack {self.refused_attack}"
        return (
            f"{self.label}: APCER {100 * self.apcer:5.1f}% [{100 * ia[0]:.1f}, {100 * ia[1]:.1f}]  "
            f"BPCER {100 * self.bpcer:5.1f}% [{100 * ib[0]:.1f}, {100 * ib[1]:.1f}]  ACER {100 * self.acer:5.1f}%  "
            f"AUC {self.auc:.3f}  BPCER@APCER1% {100 * self.bpcer_at_apcer_1:.1f}%  "
            f"BPCER@APCER5% {100 * self.bpcer_at_apcer_5:.1f}%  (live {self.n_live}, attack {self.n_attack}, "
            f"{self.people} people){extra}"
        )


def pad_report(label: str, examples: Sequence[Example], head: LinearHead, bootstrap: int = 2000) -> PadReport:
    """Score ``examples`` with ``head`` and compute the standard's figures at its threshold."""
    if not examples:
        raise DatasetError(f"{label}: nothing to score")
    return report_scores(label, examples, score_examples(examples, head), head.threshold, bootstrap)


def report_scores(
    label: str, examples: Sequence[Example], scores: np.ndarray, threshold: float, bootstrap: int = 2000
) -> PadReport:
    """The standard's figures for ``examples`` already scored (NaN: refused before scoring) at ``threshold``."""
    if not examples:
        raise DatasetError(f"{label}: nothing to score")
    attack = np.array([e.attack for e in examples])
    if attack.all() or (~attack).all():
        raise DatasetError(f"{label}: need both live and attack presentations to measure APCER and BPCER")
    ap, bp = apcer_bpcer(scores, attack, threshold)
    b1, _ = bpcer_at_apcer(scores, attack, 0.01)
    b5, _ = bpcer_at_apcer(scores, attack, 0.05)
    persons = [e.person for e in examples]
    return PadReport(
        label=label,
        threshold=threshold,
        apcer=ap,
        bpcer=bp,
        acer=(ap + bp) / 2,
        auc=auc(scores, attack),
        bpcer_at_apcer_1=b1,
        bpcer_at_apcer_5=b5,
        intervals=people_intervals(persons, scores, attack, threshold, n=bootstrap),
        n_live=int((~attack).sum()),
        n_attack=int(attack.sum()),
        people=len(set(persons)),
        refused_live=sum(1 for e in examples if e.refused and not e.attack),
        refused_attack=sum(1 for e in examples if e.refused and e.attack),
    )


def score_examples(examples: Sequence[Example], head: LinearHead) -> np.ndarray:
    return np.array([math.nan if e.refused else head.score(e.cues) for e in examples], dtype=np.float64)


# -- fitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How a head is fitted: which cues, the ridge penalty, bursts of how many frames."""

    still_cues: tuple[str, ...] = STILL_HEAD_CUES
    burst_cues: tuple[str, ...] = BURST_HEAD_CUES
    l2: float = 1.0
    burst: int = DEFAULT_BURST
    fit_stride: int = 1  # bursts for fitting overlap (every start frame): more examples of the same takes
    gap: float | None = DEFAULT_GAP  # threshold rule (facegate.liveness.head.gap_threshold); None: 0.5


def fit_heads(frames: Sequence[FrameCues], recipe: Recipe = Recipe()) -> dict[str, LinearHead]:
    """A still head and a burst head fitted on the frames' cues."""
    heads = {}
    still, _ = still_examples(frames)
    bursts = [e for e in burst_examples(frames, recipe.burst, recipe.fit_stride) if not e.refused]
    for mode, examples, cues in (("still", still, recipe.still_cues), ("burst", bursts, recipe.burst_cues)):
        live = [e for e in examples if not e.attack]
        att = [e for e in examples if e.attack]
        if len(live) < 2 or len(att) < 2:
            raise DatasetError(
                f"fitting the {mode} head needs at least 2 live and 2 attack {mode} presentations with a face; "
                f"found {len(live)} and {len(att)}"
            )
        heads[mode] = fit_head(mode, cues, cue_matrix(live, cues), cue_matrix(att, cues), recipe.l2, recipe.gap)
    return heads


def _rounded(interval: Sequence[float]) -> tuple[float, float]:
    return (round(float(interval[0]), 4), round(float(interval[1]), 4))


def with_operating_point(head: LinearHead, report: PadReport, measured_on: str) -> LinearHead:
    from dataclasses import replace

    point = PadOperatingPoint(
        apcer=round(report.apcer, 4),
        bpcer=round(report.bpcer, 4),
        measured_on=measured_on,
        apcer_interval=_rounded(report.intervals["apcer"]),
        bpcer_interval=_rounded(report.intervals["bpcer"]),
    )
    return replace(head, operating_point=point)


# -- plots ------------------------------------------------------------------------------------


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, tuple[float, float]], path: Path, title: str) -> None:
    """DET plot (APCER against BPCER on normal-deviate axes), one curve per label, and the
    operating points actually applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    ticks = np.array([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    lo, hi = 5e-4, 0.5

    def dev(p: np.ndarray) -> np.ndarray:
        return norm.ppf(np.clip(p, lo, hi))

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    for label, (ap, bp) in curves.items():
        ax.plot(dev(ap), dev(bp), lw=1.6, label=label)
    for label, (pa, pb) in points.items():
        ax.plot(dev(np.array([pa])), dev(np.array([pb])), "o", ms=6, label=f"{label} threshold")
    ax.set_xticks(dev(ticks))
    ax.set_xticklabels([f"{100 * t:g}%" for t in ticks])
    ax.set_yticks(dev(ticks))
    ax.set_yticklabels([f"{100 * t:g}%" for t in ticks])
    ax.set_xlim(dev(np.array([lo]))[0], dev(np.array([hi]))[0])
    ax.set_ylim(dev(np.array([lo]))[0], dev(np.array([hi]))[0])
    ax.set_xlabel("APCER (attacks accepted as live)")
    ax.set_ylabel("BPCER (live presentations refused)")
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -- protocols --------------------------------------------------------------------------------


def _detector(config: Any = None) -> tuple[Callable[[np.ndarray], list[Face]], str]:
    from facegate.models.detectors import box_refinement, min_face
    from facegate.pipeline import Pipeline

    pipe = Pipeline(config)
    cfg = pipe.config
    tag = f"{cfg.detector}_refine{int(box_refinement(cfg))}_min{min_face(cfg)}_thr{cfg.detection_threshold}"
    return pipe.detector.detect, tag


@dataclass(frozen=True)
class Scoring:
    """How an evaluation scores frames, the same whether it fits the recipe first (:func:`nuaa_protocol`)
    or scores a fitted model (:func:`score_model`): what is done to the scored frames, which burst
    lengths, where frame cues are cached, the bootstrap's draws, where the DET plot goes, progress bars,
    and the pipeline configuration whose detector finds the faces (``None``: the default)."""

    perturbation: Perturbation = Perturbation()
    bursts: tuple[int, ...] = (3, 5)
    cache: Path | None = None
    bootstrap: int = 2000
    plot: Path | None = None
    progress: bool = True
    config: Any = None

    def label(self, base: str) -> str:
        return base if self.perturbation == Perturbation() else f"{base} ({self.perturbation.describe()})"


def score_reports(
    frames: Sequence[FrameCues], heads: dict[str, LinearHead], scoring: Scoring, label: str, *, cues_only: bool = False
) -> list[PadReport]:
    """The standard's figures of ``heads`` on measured frames: stills, then each burst length of
    ``scoring`` (one with no burst to score is left out, with a warning), and the DET plot where
    asked. ``cues_only``: a burst length whose jump check refused some bursts is scored again with
    every burst scored, to show what the cues alone do."""
    still, no_face = still_examples(frames)
    reports = [pad_report("still", still, heads["still"], scoring.bootstrap)]
    reports[0].no_face_frames = no_face
    curves = {"still": det_curve(score_examples(still, heads["still"]), np.array([e.attack for e in still]))}
    points = {"still": (reports[0].apcer, reports[0].bpcer)}
    for k in scoring.bursts:
        ex = burst_examples(frames, k)
        if not any(not e.refused for e in ex):
            log.warning("%s: no burst of %d frames to score (takes too short?)", label, k)
            continue
        r = pad_report(f"burst of {k}", ex, heads["burst"], scoring.bootstrap)
        reports.append(r)
        curves[f"burst of {k}"] = det_curve(score_examples(ex, heads["burst"]), np.array([e.attack for e in ex]))
        points[f"burst of {k}"] = (r.apcer, r.bpcer)
        if cues_only and (r.refused_live or r.refused_attack):
            ex = burst_examples(frames, k, refuse_jumps=False)
            reports.append(pad_report(f"burst of {k}, cues only (no jump refusal)", ex, heads["burst"], scoring.bootstrap))
    if scoring.plot is not None:
        plot_det(curves, points, scoring.plot, label)
    return reports


def nuaa_protocol(
    root: Path, fit_session: str, score_session: str, recipe: Recipe = Recipe(), scoring: Scoring = Scoring(),
    cue_rows: bool = False,
) -> dict[str, Any]:
    """Fit on ``fit_session`` (unperturbed), score ``score_session`` (perturbed as asked):
    the figures of the recipe, still and bursts, with intervals over people."""
    samples = nuaa_samples(root)
    sessions = sorted({s.session for s in samples})
    for s in (fit_session, score_session):
        if s not in sessions:
            raise DatasetError(f"{root}: no session {s} (sessions: {', '.join(sessions)})")
    detect, tag = _detector(scoring.config)
    cache, progress = scoring.cache, scoring.progress
    fit_frames = measure([s for s in samples if s.session == fit_session], detect, Perturbation(), cache, tag, progress)
    score_frames = measure([s for s in samples if s.session == score_session], detect, scoring.perturbation, cache, tag,
                           progress)
    heads = fit_heads(fit_frames, recipe)
    label = scoring.label(f"nuaa_dev fit session {fit_session} -> score session {score_session}")
    reports = score_reports(score_frames, heads, scoring, label, cues_only=True)
    bursts = scoring.bursts
    table = cue_table(fit_frames, score_frames, recipe, bursts[0] if bursts else DEFAULT_BURST) if cue_rows else []
    return {
        "protocol": label,
        "fit_session": fit_session,
        "score_session": score_session,
        "perturbation": scoring.perturbation.describe(),
        "recipe": {
            "still_cues": list(recipe.still_cues),
            "burst_cues": list(recipe.burst_cues),
            "l2": recipe.l2,
            "fit_burst": recipe.burst,
            "threshold_gap": recipe.gap,
        },
        "cues_version": CUES_VERSION,
        "detector": tag,
        "heads": {m: h.to_json() for m, h in heads.items()},
        "reports": [x.to_dict() for x in reports],
        "lines": [x.line() for x in reports],
        "cue_table": table,
    }


def cue_table(fit_frames: Sequence[FrameCues], score_frames: Sequence[FrameCues], recipe: Recipe, k: int) -> list[dict[str, Any]]:
    """Every cue alone, the recipe's way: a one-cue head fitted on the fitting session (still
    cues on stills, pair cues on bursts of ``k``), its AUC, APCER and BPCER on the scored one."""
    from dataclasses import replace

    rows = []
    fit_still, _ = still_examples(fit_frames)
    score_still, _ = still_examples(score_frames)
    fit_burst = [e for e in burst_examples(fit_frames, recipe.burst, recipe.fit_stride) if not e.refused]
    score_burst = burst_examples(score_frames, k, refuse_jumps=False)
    for cue in STILL_CUES + PAIR_CUES:
        still = cue in STILL_CUES
        mode = "still" if still else "burst"
        fit_ex, score_ex = (fit_still, score_still) if still else (fit_burst, score_burst)
        live = cue_matrix([e for e in fit_ex if not e.attack], (cue,))
        att = cue_matrix([e for e in fit_ex if e.attack], (cue,))
        head = fit_head("burst", (cue,), live, att, recipe.l2, recipe.gap)
        head = replace(head, mode=mode) if still else head
        scores = score_examples(score_ex, head)
        attack = np.array([e.attack for e in score_ex])
        ap, bp = apcer_bpcer(scores, attack, head.threshold)
        rows.append({"cue": cue, "examples": "stills" if still else f"bursts of {k}", "auc": auc(scores, attack), "apcer": ap, "bpcer": bp})
    return rows


def fit_model(
    frames: Sequence[FrameCues],
    name: str,
    source: str,
    licence: str,
    permissive: bool,
    provenance: str,
    training_data: str,
    recipe: Recipe = Recipe(),
    operating_points: dict[str, PadOperatingPoint] | None = None,
) -> LivenessModel:
    """A liveness model (still and burst heads) fitted on ``frames``, with the operating points
    measured elsewhere (by the same recipe on held-out data) where given."""
    from dataclasses import replace

    heads = fit_heads(frames, recipe)
    if operating_points:
        heads = {m: replace(h, operating_point=operating_points.get(m, h.operating_point)) for m, h in heads.items()}
    return LivenessModel(
        name=name,
        version=1,
        source=source,
        licence=licence,
        permissive=permissive,
        provenance=provenance,
        training_data=training_data,
        heads=heads,
    )


NUAA_LICENCE = (
    "fitted by facegate on NUAA Photograph Imposter Database images, which are distributed for research use only: "
    "treat this head as research-use, not cleared for commercial use"
)


def fit_nuaa_model(
    root: Path,
    out: Path,
    recipe: Recipe = Recipe(),
    cache: Path | None = None,
    bootstrap: int = 2000,
    progress: bool = True,
) -> tuple[LivenessModel, list[dict[str, Any]]]:
    """The shipped model: the recipe's cross-session figures (fit 1 -> score 2 and 2 -> 1,
    unperturbed) become each head's operating point (the worse direction's APCER and BPCER,
    both directions named in ``measured_on``); the heads themselves are then fitted on both
    sessions, so anything scored on nuaa_dev afterwards is their fitting data."""
    from dataclasses import replace

    results = [
        nuaa_protocol(root, a, b, recipe, Scoring(bursts=(recipe.burst,), cache=cache, bootstrap=bootstrap, progress=progress))
        for a, b in (("1", "2"), ("2", "1"))
    ]
    points = {}
    for mode, label in (("still", "still"), ("burst", f"burst of {recipe.burst}")):
        reps = [next(r for r in res["reports"] if r["label"] == label) for res in results]
        worst_a = max(reps, key=lambda r: r["apcer"])
        worst_b = max(reps, key=lambda r: r["bpcer"])
        desc = "; ".join(
            f"fit session {res['fit_session']} -> score session {res['score_session']}: APCER {100 * r['apcer']:.1f}%, "
            f"BPCER {100 * r['bpcer']:.1f}% ({r['n_attack']} attack, {r['n_live']} live {mode} presentations)"
            for res, r in zip(results, reps)
        )
        points[mode] = PadOperatingPoint(
            apcer=round(max(r["apcer"] for r in reps), 4),
            bpcer=round(max(r["bpcer"] for r in reps), 4),
            measured_on=(
                f"nuaa_dev across sessions, the same recipe fitted on one session and scored on the other ({desc}); "
                "the worse of the two is stated. This head is fitted on both sessions: nuaa_dev is its fitting data"
            ),
            # each interval is the one of the direction whose figure is stated
            apcer_interval=_rounded(worst_a["intervals"]["apcer"]),
            bpcer_interval=_rounded(worst_b["intervals"]["bpcer"]),
        )
    samples = nuaa_samples(root)
    detect, tag = _detector()
    frames = measure(samples, detect, Perturbation(), cache, tag, progress)
    n_live = sum(not s.attack for s in samples)
    model = fit_model(
        frames,
        name="pad_cues_nuaa",
        source="fitted by facegate (facegate liveness fit --nuaa) on nuaa_dev sessions 1-2",
        licence=NUAA_LICENCE,
        permissive=False,
        provenance=(
            "a logistic regression per mode over facegate's own relative cues (facegate.liveness.cues, version "
            f"{CUES_VERSION}); no pretrained weights. Fitted on nuaa_dev (NUAA Photograph Imposter Database, Tan et al. "
            "ECCV 2010; sessions 1-2, every 5th frame): nine people, all East Asian adults, one webcam, printed photos "
            "only. Never measured on screens, masks or cut-out prints"
        ),
        training_data=f"nuaa_dev sessions 1-2: {n_live} live and {len(samples) - n_live} printed-photo frames of 9 people",
        recipe=recipe,
        operating_points=points,
    )
    model = replace(model, name="pad_cues_nuaa")
    return model.save(out), results


@dataclass
class CrossValidation:
    """Figures of a recipe fitted without each fold's people and scored on them, pooled; each
    fold scored at its own head's threshold. ``by_person``: each held-out person's APCER (attack
    presentations accepted) and BPCER (live refused) per mode, with their counts."""

    folds: int
    skipped_folds: int
    reports: dict[str, PadReport]
    by_person: dict[str, dict[str, dict[str, Any]]]

    def to_dict(self) -> dict[str, Any]:
        return {"folds": self.folds, "skipped_folds": self.skipped_folds,
                "reports": {m: r.to_dict() for m, r in self.reports.items()}, "by_person": self.by_person}


def cross_validate(
    frames: Sequence[FrameCues], recipe: Recipe = Recipe(), max_folds: int = 10, bootstrap: int = 500, burst: int = DEFAULT_BURST
) -> CrossValidation:
    """Cross-validation by person: the people are split into at most ``max_folds`` folds (one person
    a fold when there are few); each fold is scored by heads fitted on the other folds, at their
    threshold. A fold whose complement cannot fit a head (no live or no attack examples) is skipped."""
    people = sorted({f.sample.person for f in frames})
    if len(people) < 2:
        raise DatasetError(
            "cross-validation needs captures of at least 2 people (one sub-folder each under the live and attack "
            f"folders); found {len(people)}"
        )
    k = min(len(people), max_folds)
    folds = [set(people[i::k]) for i in range(k)]
    pooled: dict[str, tuple[list[Example], list[float]]] = {"still": ([], []), "burst": ([], [])}
    skipped = 0
    for fold in folds:
        train = [f for f in frames if f.sample.person not in fold]
        test = [f for f in frames if f.sample.person in fold]
        try:
            heads = fit_heads(train, recipe)
        except DatasetError:
            skipped += 1
            continue
        still, _ = still_examples(test)
        for mode, examples in (("still", still), ("burst", burst_examples(test, burst))):
            head = heads[mode]
            margin = head.logit  # each fold at its own threshold: score relative to it, threshold 0
            t = _logit(head.threshold)
            ex, sc = pooled[mode]
            for e in examples:
                ex.append(e)
                sc.append(math.nan if e.refused else margin(e.cues) - t)
    reports: dict[str, PadReport] = {}
    by_person: dict[str, dict[str, dict[str, Any]]] = {}
    for mode, (examples, scores) in pooled.items():
        arr = np.array(scores, dtype=np.float64)
        attack = np.array([e.attack for e in examples], dtype=bool)
        if len(examples) and attack.any() and (~attack).any():
            label = f"{mode}, cross-validated by person" if mode == "still" else f"burst of {burst}, cross-validated by person"
            reports[mode] = report_scores(label, examples, arr, 0.0, bootstrap)
        for person in people:
            idx = [i for i, e in enumerate(examples) if e.person == person]
            if not idx:
                continue
            accepted = np.where(np.isnan(arr[idx]), False, arr[idx] >= 0.0)
            att = attack[idx]
            by_person.setdefault(person, {})[mode] = {
                "attack": int(att.sum()), "live": int((~att).sum()),
                "apcer": float(accepted[att].mean()) if att.any() else None,
                "bpcer": float((~accepted[~att]).mean()) if (~att).any() else None,
            }
    if not reports:
        raise DatasetError(
            "cross-validation could not score anything: each fold's other people must have live and attack captures "
            f"({skipped} of {k} folds could not be fitted)"
        )
    return CrossValidation(k, skipped, reports, by_person)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def fit_site(
    live: Path, attack: Path, name: str, cache: Path | None = None, progress: bool = True, config: Any = None,
    recipe: Recipe = Recipe(),
) -> tuple[LivenessModel, CrossValidation]:
    """Fit a site's own liveness model from folders of its live and attack captures (the model is
    returned unsaved: ``facegate liveness fit`` keeps it in ``<home>/liveness``).

    The heads are fitted on every capture; the operating point each records is the
    cross-validation by person (:func:`cross_validate`), so it says how the recipe carries to
    people it was not fitted on, measured on the site's own captures. The model is the site's:
    permissive, since no third-party data fitted it. Its provenance names the folders, the
    counts and when it was fitted.
    """
    import time
    from dataclasses import replace

    samples = folder_samples(live, attack)
    detect, tag = _detector(config)
    frames = measure(samples, detect, Perturbation(), cache, tag, progress)
    cv = cross_validate(frames, recipe)
    n_live = sum(not s.attack for s in samples)
    people_live = len({s.person for s in samples if not s.attack})
    people_attack = len({s.person for s in samples if s.attack})
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    model = fit_model(
        frames,
        name=name,
        source=f"fitted by facegate (facegate liveness fit) on this site's captures, {when}",
        licence="the site's own (fitted on its own captures; no third-party data)",
        permissive=True,
        provenance=(
            f"a logistic regression per mode over facegate's relative cues (version {CUES_VERSION}), recipe: still "
            f"{'+'.join(recipe.still_cues)}, burst {'+'.join(recipe.burst_cues)}; fitted {when} by "
            f"'facegate liveness fit' on live captures in {live.resolve()} and attack captures in {attack.resolve()}"
        ),
        training_data=(
            f"{n_live} live frames ({people_live} people or folders) and {len(samples) - n_live} attack frames "
            f"({people_attack} people or folders) of this site"
        ),
        recipe=recipe,
    )
    heads = dict(model.heads)
    for mode, report in cv.reports.items():
        heads[mode] = with_operating_point(
            heads[mode], report,
            f"this site's captures, cross-validated by person ({cv.folds} folds, {cv.skipped_folds} skipped: each "
            f"fold's people held out of the fit and scored at its head's threshold; {report.n_attack} attack and "
            f"{report.n_live} live {report.label.split(',')[0]} presentations of {report.people} people)",
        )
    return replace(model, heads=heads), cv


def score_model(samples: Sequence[Sample], model: LivenessModel, label: str, scoring: Scoring = Scoring()) -> dict[str, Any]:
    """A fitted model (the one in force, or any) scored on labelled frames at its own thresholds:
    the standard's figures for stills and bursts, intervals over people, a DET plot."""
    detect, tag = _detector(scoring.config)
    frames = measure(samples, detect, scoring.perturbation, scoring.cache, tag, scoring.progress)
    label = scoring.label(label)
    reports = score_reports(frames, model.heads, scoring, label)
    return {
        "protocol": label,
        "model": {"name": model.name, "sha256": model.sha256, "source": model.source},
        "perturbation": scoring.perturbation.describe(),
        "recipe": {"still_cues": list(model.heads["still"].cues), "burst_cues": list(model.heads["burst"].cues),
                   "threshold_gap": "the model's own thresholds"},
        "cues_version": CUES_VERSION,
        "detector": tag,
        "heads": {m: h.to_json() for m, h in model.heads.items()},
        "reports": [x.to_dict() for x in reports],
        "lines": [x.line() for x in reports],
        "cue_table": [],
    }


# -- command line ----------------------------------------------------------------------------


def parse_cues(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not text:
        return default
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in names if c not in STILL_CUES + PAIR_CUES]
    if unknown or not names:
        raise UsageError(f"unknown cues {unknown}; known: {', '.join(STILL_CUES + PAIR_CUES)}")
    return names


def format_results(results: Sequence[dict[str, Any]]) -> str:
    """The text the CLI prints for protocol results (:func:`nuaa_protocol`, :func:`score_model`)."""
    lines = []
    for res in results:
        lines.append(res["protocol"])
        r = res["recipe"]
        lines.append(f"  recipe: still {'+'.join(r['still_cues'])}; burst {'+'.join(r['burst_cues'])}; gap {r['threshold_gap']}")
        lines.extend("  " + ln for ln in res["lines"])
        for row in res.get("cue_table", []):
            lines.append(
                f"    cue {row['cue']:12s} ({row['examples']}): AUC {row['auc']:.3f}  APCER {100 * row['apcer']:5.1f}%  "
                f"BPCER {100 * row['bpcer']:5.1f}%"
            )
    return "\n".join(lines)
