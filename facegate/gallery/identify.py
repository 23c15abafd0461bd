"""1:N identification metrics: closed-set rank-k and open-set DIR at a fixed FPIR.

Open-set terms follow ISO/IEC 19795-1 and NIST FRVT 1:N:

* a *mated* search has its person in the gallery, a *non-mated* one does not;
* FPIR(t): share of non-mated searches whose best candidate scores above ``t``
  (someone unenrolled would be identified as somebody);
* DIR(t) (detection and identification rate, = 1 - FNIR): share of mated searches
  whose rank-1 candidate is the right person *and* scores above ``t``.

``t`` is chosen on the non-mated scores so that FPIR is at most the target; DIR at
FPIR = 1% is the one number that says how an access gate would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ranks_of_truth(candidates: Sequence[Sequence[int]], truth: Sequence[int]) -> np.ndarray:
    """1-based rank of the true person among each search's candidates (0 when absent)."""
    out = np.zeros(len(truth), dtype=np.int64)
    for i, (cands, t) in enumerate(zip(candidates, truth)):
        for r, c in enumerate(cands):
            if c == t:
                out[i] = r + 1
                break
    return out


def rank_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks)
    return float(((ranks >= 1) & (ranks <= k)).mean()) if len(ranks) else float("nan")


def threshold_at_fpir(nonmated_top: np.ndarray, fpir: float) -> float:
    """Smallest threshold with at most ``fpir`` of the non-mated best scores strictly above it."""
    s = np.sort(np.asarray(nonmated_top, dtype=np.float64))[::-1]
    if len(s) == 0:
        return float("-inf")
    allowed = int(np.floor(fpir * len(s)))
    return float(s[min(allowed, len(s) - 1)])


def open_set(
    mated_rank1_correct: np.ndarray,
    mated_rank1_score: np.ndarray,
    nonmated_top_score: np.ndarray,
    fpir: float = 0.01,
) -> dict[str, Any]:
    """DIR at the threshold that gives the target FPIR on the non-mated searches."""
    thr = threshold_at_fpir(nonmated_top_score, fpir)
    correct = np.asarray(mated_rank1_correct, dtype=bool)
    score = np.asarray(mated_rank1_score, dtype=np.float64)
    dir_ = float((correct & (score > thr)).mean()) if len(correct) else float("nan")
    actual = float((np.asarray(nonmated_top_score) > thr).mean()) if len(nonmated_top_score) else float("nan")
    return {"fpir_target": fpir, "threshold": thr, "dir": dir_, "fpir": actual, "fnir": 1 - dir_}


def dir_at_threshold(
    mated_rank1_correct: np.ndarray, mated_rank1_score: np.ndarray, nonmated_top_score: np.ndarray, threshold: float
) -> dict[str, float]:
    """DIR and FPIR at a given threshold (e.g. the verification threshold at a FAR)."""
    correct = np.asarray(mated_rank1_correct, dtype=bool)
    score = np.asarray(mated_rank1_score, dtype=np.float64)
    return {
        "threshold": float(threshold),
        "dir": float((correct & (score > threshold)).mean()) if len(correct) else float("nan"),
        "fpir": float((np.asarray(nonmated_top_score) > threshold).mean()) if len(nonmated_top_score) else float("nan"),
    }


def summarize(
    candidates: Sequence[Sequence[tuple[int, float]]],
    truth: Sequence[int],
    nonmated: Sequence[Sequence[tuple[int, float]]],
    fpir: float = 0.01,
) -> dict[str, Any]:
    """Rank-1, rank-5 and open-set DIR@FPIR from (person id, score) candidate lists."""
    ranks = ranks_of_truth([[p for p, _ in c] for c in candidates], truth)
    top_ok = np.array([bool(c) and c[0][0] == t for c, t in zip(candidates, truth)])
    top_score = np.array([c[0][1] if c else -np.inf for c in candidates])
    non_top = np.array([c[0][1] if c else -np.inf for c in nonmated])
    out: dict[str, Any] = {
        "mated_searches": len(truth),
        "nonmated_searches": len(nonmated),
        "rank1": rank_k(ranks, 1),
        "rank5": rank_k(ranks, 5),
    }
    out["open_set"] = open_set(top_ok, top_score, non_top, fpir)
    return out
