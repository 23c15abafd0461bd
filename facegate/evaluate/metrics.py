"""Verification metrics: k-fold accuracy with thresholds chosen on held-out folds, ROC, AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (decisions are ``score > t``) that maximises accuracy on these pairs.

    Candidates are midpoints between consecutive sorted scores, so the choice does not
    depend on a grid; ties are broken towards the middle of the best interval.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order].astype(np.int64)
    n = len(s)
    # Threshold below element i (i = 0..n): accept s[i:], so correct = positives in s[i:] + negatives in s[:i]
    pos_right = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    neg_left = np.concatenate([[0], np.cumsum(1 - y)])
    correct = pos_right + neg_left
    # Only cut between distinct scores.
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]
    correct = np.where(valid, correct, -1)
    best = np.flatnonzero(correct == correct.max())
    i = int(best[len(best) // 2])
    if i == 0:
        return float(s[0] - 1e-6)
    if i == n:
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


@dataclass
class FoldResult:
    fold: int
    threshold: float
    accuracy: float


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> list[FoldResult]:
    """LFW View 2: for each fold, pick the threshold on the other folds, measure on this one."""
    results = []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        t = best_threshold(scores[train], same[train])
        acc = float(((scores[test] > t) == same[test]).mean())
        results.append(FoldResult(fold=int(k), threshold=t, accuracy=acc))
    return results


def roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FAR, TAR, thresholds) for every distinct threshold, FAR ascending."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order].astype(bool)
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # keep the last index of each run of equal scores
    tar = np.r_[0.0, tp[last] / max(1, y.sum())]
    far = np.r_[0.0, fp[last] / max(1, (~y).sum())]
    thr = np.r_[np.inf, s[last]]
    return far, tar, thr


def auc(far: np.ndarray, tar: np.ndarray) -> float:
    return float(np.trapezoid(tar, far))


def tar_at_far(scores: np.ndarray, same: np.ndarray, max_false: int) -> tuple[float, float]:
    """TAR when at most ``max_false`` impostor pairs are accepted; returns (TAR, threshold)."""
    imp = np.sort(scores[~same])[::-1]
    thr = float(imp[max_false]) if max_false < len(imp) else float(imp[-1]) - 1e-6
    return float((scores[same] > thr).mean()), thr
