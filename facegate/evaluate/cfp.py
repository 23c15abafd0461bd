"""CFP (Celebrities in Frontal-Profile) verification: the frontal-profile (FP) and
frontal-frontal (FF) protocols.

CFP's own protocol: ``Protocol/Pair_list_F.txt`` / ``Pair_list_P.txt`` number the frontal and
profile images; ``Protocol/Split/{FP,FF}/NN/{same,diff}.txt`` hold "i,j" pairs per fold (FP:
frontal i with profile j; FF: frontal i with frontal j), 350 same and 350 different per fold,
folds identity-disjoint. Accuracy is the mean over the folds present, each fold's threshold
chosen on the others. The photos are uncropped, one person each, so the largest face is
used; an image where no face is found gets no embedding, and every pair with such an image is
scored as "different" (score -1) and stays in the result: the detector's misses count against
the stack, as they would at a gate. The share of images without a face is reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.errors import DatasetError
from facegate.evaluate import metrics
from facegate.evaluate.embedding import FAILED, embed_files
from facegate.models.detectors import box_refinement
from facegate.pipeline import Pipeline

log = logging.getLogger(__name__)

PROTOCOLS = ("FP", "FF")


@dataclass
class CfpResult:
    protocol: str
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    folds: list[str]
    auc: float
    tar_at_far_1e2: float
    n_pairs: int
    no_face_frontal: float  # share of the protocol's frontal images without a face found
    no_face_profile: float
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _image_list(path: Path) -> dict[int, Path]:
    if not path.exists():
        raise DatasetError(f"CFP list not found: {path}")
    out: dict[int, Path] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out[int(parts[0])] = (path.parent / parts[1]).resolve()
    return out


def read_protocol(root: Path, protocol: str) -> list[tuple[Path, Path, bool, str]]:
    """(image a, image b, same person, fold) for every pair of one protocol whose two images
    are present (``cfp_dev`` holds 200 of CFP's 500 people; its folds use only those)."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown CFP protocol {protocol!r}; use FP or FF")
    prot = root / "Protocol"
    frontal = _image_list(prot / "Pair_list_F.txt")
    second = _image_list(prot / ("Pair_list_P.txt" if protocol == "FP" else "Pair_list_F.txt"))
    split = prot / "Split" / protocol
    if not split.is_dir():
        raise DatasetError(f"CFP split folder not found: {split}")
    pairs = []
    for fold in sorted(p.name for p in split.iterdir() if p.is_dir()):
        for name, same in (("same.txt", True), ("diff.txt", False)):
            for line in (split / fold / name).read_text().split():
                i, j = (int(v) for v in line.split(","))
                a, b = frontal.get(i), second.get(j)
                if a is not None and b is not None and a.exists() and b.exists():
                    pairs.append((a, b, same, fold))
    if not pairs:
        raise DatasetError(f"no CFP {protocol} pairs with both images present under {root}")
    return pairs


def evaluate_cfp(pipeline: Pipeline, root: Path, protocol: str = "FP", progress: bool = True) -> CfpResult:
    t0 = time.perf_counter()
    pairs = read_protocol(root, protocol)
    images = sorted({q for a, b, _, _ in pairs for q in (a, b)})
    emb = embed_files(pipeline, images, pick="largest", fallback=(), progress=progress, desc=f"CFP {protocol} images")
    index = {Path(p): i for i, p in enumerate(emb.paths)}
    failed = np.array([s == FAILED for s in emb.status])
    ia = np.array([index[a] for a, _, _, _ in pairs])
    ib = np.array([index[b] for _, b, _, _ in pairs])
    scores = np.einsum("ij,ij->i", emb.embeddings[ia], emb.embeddings[ib])
    scores[failed[ia] | failed[ib]] = -1.0  # no face: "different", whatever the pair is
    same = np.array([s for _, _, s, _ in pairs])
    fold_names = sorted({f for *_, f in pairs})
    fold_ids = np.array([fold_names.index(f) for *_, f in pairs])
    res = metrics.kfold_accuracy(scores, same, fold_ids)
    accs = np.array([r.accuracy for r in res])
    far, tar, _ = metrics.roc(scores, same)
    tar_1e2, _ = metrics.tar_at_far(scores, same, max_false=int(np.floor(1e-2 * int((~same).sum()))))
    is_profile = np.array(["/profile/" in str(p) for p in emb.paths])
    cfg = pipeline.config
    return CfpResult(
        protocol=protocol,
        accuracy_mean=float(accs.mean()),
        accuracy_std=float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
        fold_accuracies=[float(a) for a in accs],
        folds=fold_names,
        auc=metrics.auc(far, tar),
        tar_at_far_1e2=tar_1e2,
        n_pairs=len(pairs),
        no_face_frontal=float(failed[~is_profile].mean()) if (~is_profile).any() else 0.0,
        no_face_profile=float(failed[is_profile].mean()) if is_profile.any() else 0.0,
        settings={"detector": cfg.detector, "embedder": cfg.embedder, "flip": cfg.flip,
                  "refine_boxes": box_refinement(cfg), "pick": "largest", "no_face": "pair scored different",
                  "data": str(root)},
        seconds=time.perf_counter() - t0,
    )


def format_report(results: list[CfpResult]) -> str:
    lines = []
    for r in results:
        lines.append(
            f"CFP {r.protocol}: {100 * r.accuracy_mean:.2f}% ± {100 * r.accuracy_std:.2f} over folds "
            f"{', '.join(r.folds)} ({r.n_pairs} pairs; each fold's threshold chosen on the others)   "
            f"AUC {r.auc:.4f}   TAR {100 * r.tar_at_far_1e2:.2f}% at FAR 1e-2"
        )
        lines.append(
            f"  no face found: {100 * r.no_face_frontal:.1f}% of frontal"
            + (f", {100 * r.no_face_profile:.1f}% of profile" if r.protocol == "FP" else "")
            + " images (their pairs scored 'different')"
        )
    if results:
        s = results[0].settings
        lines.append(f"stack: {s['detector']} + {s['embedder']}, flip {s['flip']}, refine {s['refine_boxes']}")
    return "\n".join(lines)
