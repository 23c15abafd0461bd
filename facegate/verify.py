"""Scores, thresholds and the false-accept rates behind them.

A threshold on its own means nothing to an integrator; what they need is "at this
threshold, one impostor in a thousand is accepted". Every shipped embedder carries
operating points measured by :func:`calibrate` over all cross-identity pairs of a
named data set, and decisions report the FAR their threshold stands for.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources

import numpy as np

from facegate.config import Config
from facegate.decide import decide, decision_threshold  # noqa: F401 - the rules live in facegate.decide
from facegate.errors import UsageError
from facegate.types import OperatingPoint

# FARs we calibrate and report; 1e-5 and 1e-6 need millions of impostor pairs (LFW gives 87M).
STANDARD_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# The calibrated curve: four FARs per decade, so 1:N decisions can interpolate the threshold
# for the per-comparison FAR a gallery's size calls for.
CURVE_FARS = tuple(float(f"{10 ** (-k / 4):.3g}") for k in range(4, 25))
# A FAR is reported only when at least this many impostor pairs score above its threshold.
MIN_IMPOSTORS_ABOVE = 10


def impostor_pairs_needed(far: float) -> int:
    """Impostor pairs a calibration needs before it can resolve ``far`` (see :func:`calibrate`)."""
    return int(np.ceil(MIN_IMPOSTORS_ABOVE / far - 1e-9))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (unit vectors in practice)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def _pair_scores_by_label(
    emb: np.ndarray, labels: np.ndarray, keep_top: int, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray, int]:
    """Genuine scores (all same-label pairs), the ``keep_top`` highest impostor scores,
    and the number of impostor pairs, from one pass over the upper triangle in chunks."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(emb)
    genuine: list[np.ndarray] = []
    top = np.empty(0, dtype=np.float32)
    n_imp = 0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s = emb[start:stop] @ emb[start:].T  # rows start..stop vs columns start..n
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, n)[None, :]
        upper = cols > rows
        same = labels[start:stop, None] == labels[None, start:]
        genuine.append(s[upper & same])
        imp = s[upper & ~same]
        n_imp += imp.size
        if keep_top > 0 and imp.size:
            k = min(keep_top, imp.size)
            cand = np.concatenate([top, np.partition(imp, imp.size - k)[imp.size - k :]])
            top = np.partition(cand, cand.size - min(keep_top, cand.size))[cand.size - min(keep_top, cand.size) :]
    return np.concatenate(genuine) if genuine else np.empty(0, np.float32), np.sort(top)[::-1], n_imp


def calibrate(
    embeddings: np.ndarray, labels: list | np.ndarray, dataset: str, fars: tuple[float, ...] = STANDARD_FARS
) -> list[OperatingPoint]:
    """Operating points from every pair of a labelled set of unit embeddings.

    For each FAR ``f`` the threshold is the smallest score such that at most
    ``f * N_impostor`` impostor pairs score strictly above it (decisions are
    ``score > threshold``); TAR is the share of genuine pairs above it. FARs that
    the number of impostor pairs cannot resolve (fewer than ~10 impostors above
    threshold) are left out rather than reported with false precision.
    """
    labels = np.asarray(labels)
    codes = np.unique(labels, return_inverse=True)[1]
    n = len(codes)
    n_pairs = n * (n - 1) // 2
    usable = [f for f in fars if n_pairs >= impostor_pairs_needed(f)]
    keep = int(max(usable) * n_pairs) + 1 if usable else 0
    genuine, top, n_imp = _pair_scores_by_label(embeddings, codes, keep)
    points = []
    for f in sorted(usable, reverse=True):
        k = int(np.floor(f * n_imp))
        if k < MIN_IMPOSTORS_ABOVE or k >= len(top):
            continue
        thr = float(top[k])  # k impostors lie strictly above (ties aside)
        tar = float((genuine > thr).mean()) if genuine.size else None
        points.append(OperatingPoint(far=f, threshold=thr, tar=tar, dataset=dataset))
    return points


def stack_key(config: Config) -> str:
    """The whole stack a score distribution depends on: embedder, detector (with O-Net box
    refinement or not), the landmark scheme the chips were aligned from (``~derived`` when the
    detector does not produce it natively) and mirror averaging. Operating points are
    calibrated for one stack and apply to that stack only."""
    from facegate.models.detectors import stack_detector
    from facegate.models.registry import get_spec

    spec = get_spec(config.embedder, config)
    scheme = spec.scheme
    det, native_schemes = stack_detector(config)  # e.g. "blazeface+onet", ("mtcnn5", "dlib5")
    native = scheme in native_schemes
    return f"{spec.name}|{det}|{scheme}{'' if native else '~derived'}|{'flip' if config.flip else 'noflip'}"


def _as_key(stack: Config | str) -> tuple[str, Config | None]:
    """A stack key from a Config, a key, or a bare embedder name (that embedder's default stack)."""
    if isinstance(stack, Config):
        return stack_key(stack), stack
    if "|" in stack:
        return stack, None
    from facegate.errors import ModelError

    try:
        return stack_key(Config(embedder=stack)), None
    except ModelError:  # a model nobody registered has no table: an empty key finds nothing
        return stack, None


def read_table(name: str, config: Config | None = None) -> dict:
    """A shipped JSON table keyed by stack, with the user's own calibrations of the same name in
    ``<home>`` (written by ``facegate calibrate --write``) taking precedence."""
    table = json.loads(resources.files("facegate").joinpath(f"data/{name}").read_text())
    if config is not None:
        own = config.home / name
        if own.exists():
            try:
                table.update(json.loads(own.read_text()))
            except ValueError as exc:
                raise UsageError(f"{own} is not valid JSON ({exc}); fix or delete it") from exc
    return table


def load_operating_points(stack: Config | str) -> list[OperatingPoint]:
    """The operating points calibrated for a stack (empty when there are none: user models,
    or a detector/landmark/mirror combination nobody calibrated)."""
    key, config = _as_key(stack)
    entry = read_table("operating_points.json", config).get(key)
    if not entry:
        return []
    return [OperatingPoint(dataset=entry["dataset"], **p) for p in entry["points"]]


def calibrated_stacks(embedder: str | None = None) -> dict[str, list[OperatingPoint]]:
    """Every shipped stack (optionally of one embedder) with its operating points."""
    table = read_table("operating_points.json")
    return {k: [OperatingPoint(dataset=e["dataset"], **p) for p in e["points"]] for k, e in table.items()
            if embedder is None or k.split("|", 1)[0] == embedder}


def merge_table_entry(path: str, embedder: str, entry: dict) -> None:
    """Set one stack's entry in a JSON table keyed by stack (the shipped operating-point
    and template-point tables), keeping the other stacks' entries."""
    try:
        with open(path) as fh:
            table = json.load(fh)
    except FileNotFoundError:
        table = {}
    table[embedder] = entry
    with open(path, "w") as fh:
        json.dump(table, fh, indent=2)
        fh.write("\n")


def save_operating_points(path: str, key: str, points: list[OperatingPoint], settings: dict) -> None:
    """Write (merge) a stack's operating points into a JSON table like the shipped one."""
    merge_table_entry(path, key, {
        "dataset": points[0].dataset if points else "",
        "settings": settings,
        "points": [{k: v for k, v in asdict(p).items() if k != "dataset"} for p in points],
    })
