"""LFW verification, View 2: 10 folds of 300 same + 300 different pairs.

The protocol the field reports: for each fold the threshold is chosen on the other
nine, accuracy is measured on the held-out fold, and the mean and standard
deviation over the ten folds are reported. Runs on the raw images through the real
pipeline (detect -> align -> embed); images where no face is found are handled by
the stated fallback and counted.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.errors import DatasetError
from facegate.evaluate import metrics
from facegate.evaluate.embedding import EmbeddedSet, embed_files
from facegate.models.detectors import box_refinement
from facegate.pipeline import Pipeline

log = logging.getLogger(__name__)

# Published LFW View 2 results (mean accuracy, %), for the table printed beside ours.
PUBLISHED = [
    ("Human (tight crops)", 97.53),
    ("DeepFace (2014)", 97.35),
    ("DeepID (2014)", 97.45),
    ("GaussianFace (2014)", 98.52),
    ("DeepID2 (2014)", 99.15),
    ("dlib ResNet (2017)", 99.38),
    ("DeepID3 (2015)", 99.53),
    ("FaceNet (2015)", 99.63),
    ("ArcFace R100 (2018)", 99.83),
]


@dataclass
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def lfw_path(root: Path, name: str, num: int) -> Path:
    return root / name / f"{name}_{num:04d}.jpg"


def read_pairs(root: Path, pairs_file: Path) -> list[Pair]:
    """Parse View 2 ``pairs.txt``: a header ``folds<TAB>n`` then per fold n same and n different pairs."""
    if not pairs_file.exists():
        raise DatasetError(f"pairs file not found: {pairs_file}")
    if not root.is_dir():
        raise DatasetError(f"LFW image folder not found: {root}")
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    try:
        folds, n = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"{pairs_file}: first line must be '<folds> <pairs per class>'") from exc
    body = lines[1:]
    if len(body) != folds * 2 * n:
        raise DatasetError(f"{pairs_file}: expected {folds * 2 * n} pairs, found {len(body)}")
    pairs = []
    for i, f in enumerate(body):
        fold = i // (2 * n)
        if len(f) == 3:
            pairs.append(Pair(lfw_path(root, f[0], int(f[1])), lfw_path(root, f[0], int(f[2])), True, fold))
        elif len(f) == 4:
            pairs.append(Pair(lfw_path(root, f[0], int(f[1])), lfw_path(root, f[2], int(f[3])), False, fold))
        else:
            raise DatasetError(f"{pairs_file}: malformed line {i + 2}: {' '.join(f)}")
    missing = [p for p in {q for pr in pairs for q in (pr.a, pr.b)} if not p.exists()]
    if missing:
        raise DatasetError(f"{len(missing)} images named in {pairs_file} are missing, e.g. {missing[0]}")
    return pairs


@dataclass
class LfwResult:
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    auc: float
    tar_at_lowest_far: float
    lowest_far: float
    tar_at_far_1e3: float
    eer: float
    n_pairs: int
    n_images: int
    outcomes: dict[str, int]
    errors_involving_fallback: int
    n_errors: int
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def evaluate_lfw(
    pipeline: Pipeline,
    root: Path,
    pairs_file: Path,
    out_dir: Path | None = None,
    folds: list[int] | None = None,
    fallback: tuple[str, ...] = ("centre",),
    progress: bool = True,
) -> tuple[LfwResult, EmbeddedSet, np.ndarray, list[Pair]]:
    """Run the protocol; ``folds`` restricts it to some folds (then cross-validation runs
    over those folds only, which is what the one-fold CI tripwire uses)."""
    t0 = time.perf_counter()
    pairs = read_pairs(root, pairs_file)
    if folds is not None:
        pairs = [p for p in pairs if p.fold in folds]
    images = sorted({q for pr in pairs for q in (pr.a, pr.b)})
    emb_set = embed_files(pipeline, images, pick="center", fallback=fallback, progress=progress, desc="LFW images")
    index = {Path(p): i for i, p in enumerate(emb_set.paths)}
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    scores = np.einsum("ij,ij->i", emb_set.embeddings[ia], emb_set.embeddings[ib])
    same = np.array([p.same for p in pairs])
    fold_ids = np.array([p.fold for p in pairs])
    if len(np.unique(fold_ids)) > 1:
        res = metrics.kfold_accuracy(scores, same, fold_ids)
    else:  # a single fold: threshold from the same fold (a tripwire, not the protocol)
        t = metrics.best_threshold(scores, same)
        res = [metrics.FoldResult(int(fold_ids[0]), t, float(((scores > t) == same).mean()))]
    accs = np.array([r.accuracy for r in res])
    far, tar, _ = metrics.roc(scores, same)
    n_imp = int((~same).sum())
    tar_low, _ = metrics.tar_at_far(scores, same, max_false=0)
    tar_1e3, _ = metrics.tar_at_far(scores, same, max_false=int(np.floor(1e-3 * n_imp)))
    frr = 1 - tar
    eer_i = int(np.argmin(np.abs(frr - far)))
    fallback_imgs = {i for i, s in enumerate(emb_set.status) if s.startswith("fallback") or s == "failed"}
    # Errors at each fold's own threshold
    thr_per_pair = np.array([{r.fold: r.threshold for r in res}[f] for f in fold_ids])
    wrong = (scores > thr_per_pair) != same
    err_fb = int(sum(1 for k in np.flatnonzero(wrong) if ia[k] in fallback_imgs or ib[k] in fallback_imgs))
    cfg = pipeline.config
    result = LfwResult(
        accuracy_mean=float(accs.mean()),
        accuracy_std=float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
        fold_accuracies=[float(a) for a in accs],
        fold_thresholds=[r.threshold for r in res],
        auc=metrics.auc(far, tar),
        tar_at_lowest_far=tar_low,
        lowest_far=0.0,
        tar_at_far_1e3=tar_1e3,
        eer=float((far[eer_i] + frr[eer_i]) / 2),
        n_pairs=len(pairs),
        n_images=len(images),
        outcomes=emb_set.counts(),
        errors_involving_fallback=err_fb,
        n_errors=int(wrong.sum()),
        settings={
            "detector": cfg.detector,
            "embedder": cfg.embedder,
            "flip": cfg.flip,
            "device": cfg.device,
            "fp16": cfg.fp16,
            "refine_boxes": box_refinement(cfg),
            "pick": "center (face nearest the image centre when several are found)",
            "no_face_fallback": list(fallback),
            "data": str(root),
            "pairs": str(pairs_file),
            "folds": sorted(int(f) for f in np.unique(fold_ids)),
        },
        seconds=time.perf_counter() - t0,
    )
    if out_dir is not None:
        write_outputs(result, scores, same, far, tar, out_dir)
    return result, emb_set, scores, pairs


def write_outputs(result: LfwResult, scores, same, far, tar, out_dir: Path) -> None:
    from facegate.evaluate.plots import plot_histogram, plot_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lfw_result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    label = f"facegate {result.settings['detector']}+{result.settings['embedder']} (AUC {result.auc:.4f})"
    plot_roc(far, tar, out_dir / "lfw_roc.png", label, "LFW View 2 ROC (6,000 pairs)" if result.n_pairs == 6000 else "LFW ROC")
    thr = {"mean fold threshold": float(np.mean(result.fold_thresholds))}
    plot_histogram(scores, same, out_dir / "lfw_scores.png", thr, "LFW pair scores")


def format_report(result: LfwResult) -> str:
    """The human-readable report: our row inside the published table, then the details."""
    ours = ("facegate (this run)", 100 * result.accuracy_mean)
    rows = sorted(PUBLISHED + [ours], key=lambda r: r[1])
    k = len(result.fold_accuracies)
    how = ("threshold of each fold chosen on the other folds" if k > 1
           else "threshold chosen on the same fold: a quick check, not the protocol")
    lines = [f"LFW View 2 verification: {result.n_pairs} pairs, {k} fold(s), {how}", ""]
    lines.append(f"  {'method':<28} accuracy")
    for name, acc in rows:
        if name == ours[0]:
            lines.append(f"> {name:<28} {acc:.2f}% ± {100 * result.accuracy_std:.2f}   "
                         f"<-- {result.settings['detector']} + {result.settings['embedder']}")
        else:
            lines.append(f"  {name:<28} {acc:.2f}%")
    o = result.outcomes
    lines += [
        "",
        f"ROC AUC {result.auc:.5f}   EER {100 * result.eer:.2f}%   "
        f"TAR {100 * result.tar_at_far_1e3:.2f}% at FAR 1e-3   TAR {100 * result.tar_at_lowest_far:.2f}% at FAR 0 "
        f"(no impostor pair accepted: the lowest FAR {result.n_pairs // 2} impostor pairs allow)",
        f"per-fold accuracy: {' '.join(f'{100 * a:.2f}' for a in result.fold_accuracies)}",
        f"images: {result.n_images}; one face {o.get('found', 0)}, several (nearest centre taken) {o.get('picked', 0)}, "
        f"no face -> fallback detector {o.get('fallback_detector', 0)}, no face -> centre box {o.get('fallback_centre', 0)}, "
        f"failed {o.get('failed', 0)} (failed images score 0 against everything and stay in the result)",
        f"errors: {result.n_errors} pairs wrong at their fold's threshold, "
        f"{result.errors_involving_fallback} of them involve a fallback image",
        f"time: {result.seconds:.0f} s",
    ]
    return "\n".join(lines)
