"""The impostor (and genuine) pairs a site already has, kept with who is on each side.

A site's impostor scores come from three sources, any or all:

* its **gallery**: every pair of photos of two different enrolled people (30 people with one
  photo each give 435 pairs; 300 people give 45k);
* a folder of **strangers**: photos (or gate captures) known to be of nobody enrolled, each
  scored against every enrolled photo. Strangers are not paired with each other: the same
  stranger may be in many of them;
* a **labelled** folder: every cross-identity pair in it (and its same-person pairs as genuine).

Each pair keeps the two *units* it joins (an enrolled or labelled person, or one stranger photo),
because the uncertainty of anything estimated from these pairs comes from how many people
they saw, not how many pairs: 435 pairs of 30 people are 30 people's faces, and the estimator
bootstraps over units (:mod:`facegate.calibrate.estimate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from facegate.errors import UsageError

GALLERY, STRANGERS, LABELLED = "gallery", "strangers", "labelled"
SOURCES = (GALLERY, STRANGERS, LABELLED)
# Past this many impostor pairs a uniform random subset is kept: quantiles of 2M pairs are as
# good as those of 50M for a body fit, and the bootstrap stays a few seconds.
MAX_PAIRS = 2_000_000


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (embeddings are unit vectors already; stored ones may have drifted)."""
    e = np.asarray(embeddings, dtype=np.float32)
    if e.ndim != 2:
        raise UsageError(f"embeddings must be a 2-d array (photos x dimensions), got shape {e.shape}")
    n = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.maximum(n, 1e-12)


def template(embeddings: np.ndarray) -> np.ndarray:
    """The re-normalised mean of one person's embeddings (the gallery's ``mean`` rule)."""
    t = unit_rows(embeddings).astype(np.float64).sum(axis=0)
    return (t / max(float(np.linalg.norm(t)), 1e-12)).astype(np.float32)


@dataclass
class SitePairs:
    """Impostor and genuine pair scores of one site, each with the units on its two sides.

    ``unit_source[u]`` names where unit ``u`` came from; ``names[u]`` what the site calls it
    (a person's name, a stranger photo's index). ``templates[k]``: impostor scores of the
    k-photo templates of enrolled people with exactly k photos against other units' photos,
    with the template's owner as ``a`` (templates of more than one photo only).
    """

    scores: np.ndarray  # impostor pair scores (float32)
    a: np.ndarray  # unit on one side (int32)
    b: np.ndarray  # unit on the other
    genuine: np.ndarray  # same-person pair scores (gallery and labelled people with >= 2 photos)
    genuine_unit: np.ndarray  # the person of each genuine pair
    unit_source: list[str]
    names: list[str]
    photos: dict[str, int] = field(default_factory=dict)  # photos per source
    total_pairs: int = 0  # impostor pairs before subsampling
    templates: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    unit_photos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # photos of each unit (empty: 1 each)

    def pair_weights(self) -> np.ndarray:
        """Each impostor pair's weight when every pair of *people* counts once: ``1 / (photos of a x photos
        of b)``; a person enrolled with three photos otherwise counts three times in every statistic."""
        if self.unit_photos.size != self.units:
            return np.ones(self.pairs, np.float64)
        n = np.maximum(self.unit_photos, 1).astype(np.float64)
        return 1.0 / (n[self.a] * n[self.b])

    @property
    def pairs(self) -> int:
        return int(self.scores.size)

    def people(self, sources: Sequence[str] = (GALLERY, LABELLED)) -> int:
        """Distinct people (units of the given sources) that appear in at least one impostor pair."""
        seen = np.unique(np.concatenate([self.a, self.b])) if self.pairs else np.zeros(0, int)
        return int(sum(1 for u in seen if self.unit_source[u] in sources))

    @property
    def units(self) -> int:
        return len(self.unit_source)

    def counts(self) -> dict[str, int]:
        """Pairs, people and photos per source, for the record and the printout."""
        src = np.asarray(self.unit_source + [""])
        out: dict[str, int] = {"impostor_pairs": self.pairs, "impostor_pairs_total": int(self.total_pairs),
                               "genuine_pairs": int(self.genuine.size), "people": self.people(),
                               "stranger_photos": int(sum(1 for s in self.unit_source if s == STRANGERS))}
        for s in SOURCES:
            out[f"{s}_photos"] = int(self.photos.get(s, 0))
            if self.pairs:
                out[f"{s}_pairs"] = int(((src[self.a] == s) | (src[self.b] == s)).sum())
        return out


def _upper_pairs(emb: np.ndarray, units: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, ...]:
    """(scores, unit a, unit b) of every pair i < j of one photo set with different units, and the
    genuine (same-unit) scores with their unit."""
    out_s, out_a, out_b, gen_s, gen_u = [], [], [], [], []
    n = len(emb)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s = emb[start:stop] @ emb[start:].T
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, n)[None, :]
        upper = cols > rows
        ua, ub = units[start:stop, None], units[None, start:]
        same = ua == ub
        imp = upper & ~same
        ri, ci = np.nonzero(imp)
        out_s.append(s[imp])
        out_a.append(units[start + ri])
        out_b.append(units[start + ci])
        gm = upper & same
        gr, _ = np.nonzero(gm)
        gen_s.append(s[gm])
        gen_u.append(units[start + gr])
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))  # noqa: E731
    return (cat(out_s, np.float32), cat(out_a, np.int32), cat(out_b, np.int32), cat(gen_s, np.float32),
            cat(gen_u, np.int32))


def collect_pairs(
    people: Mapping[str, np.ndarray] | None = None,
    strangers: np.ndarray | None = None,
    labelled: tuple[np.ndarray, Sequence[str]] | None = None,
    *,
    max_pairs: int = MAX_PAIRS,
    seed: int = 0,
) -> SitePairs:
    """Every impostor pair of a site's sources (see the module docstring).

    ``people``: enrolled name -> that person's embeddings (rows); ``strangers``: embeddings of
    photos of nobody enrolled; ``labelled``: (embeddings, the person of each row). Pairs past
    ``max_pairs`` are subsampled uniformly (``total_pairs`` keeps the full count).
    """
    people = dict(people or {})
    unit_source: list[str] = []
    names: list[str] = []
    blocks_e, blocks_u = [], []
    photos: dict[str, int] = {}

    def add_unit(source: str, name: str) -> int:
        unit_source.append(source)
        names.append(name)
        return len(unit_source) - 1

    g_units = []
    for name, e in people.items():
        e = unit_rows(e)
        if not len(e):
            continue
        u = add_unit(GALLERY, str(name))
        g_units.append((u, e))
        blocks_e.append(e)
        blocks_u.append(np.full(len(e), u, np.int32))
    photos[GALLERY] = int(sum(len(e) for _, e in g_units))
    gallery_emb = np.concatenate(blocks_e) if blocks_e else np.zeros((0, 1), np.float32)
    gallery_units = np.concatenate(blocks_u) if blocks_u else np.zeros(0, np.int32)

    parts_s, parts_a, parts_b, gen_s, gen_u = [], [], [], [], []
    if len(gallery_emb) > 1:
        s, a, b, gs, gu = _upper_pairs(gallery_emb, gallery_units)
        parts_s.append(s)
        parts_a.append(a)
        parts_b.append(b)
        gen_s.append(gs)
        gen_u.append(gu)

    if strangers is not None and len(strangers):
        st = unit_rows(strangers)
        photos[STRANGERS] = len(st)
        if len(gallery_emb):
            if st.shape[1] != gallery_emb.shape[1]:
                raise UsageError(f"stranger embeddings have {st.shape[1]} dimensions, the gallery's {gallery_emb.shape[1]}: "
                                 "they come from different models")
            su = np.asarray([add_unit(STRANGERS, f"stranger photo {i}") for i in range(len(st))], np.int32)
            s = st @ gallery_emb.T
            parts_s.append(s.ravel())
            parts_a.append(np.repeat(su, len(gallery_emb)))
            parts_b.append(np.tile(gallery_units, len(st)))

    if labelled is not None:
        le, ll = unit_rows(labelled[0]), np.asarray(labelled[1])
        if len(le) != len(ll):
            raise UsageError(f"{len(le)} labelled embeddings but {len(ll)} labels")
        photos[LABELLED] = len(le)
        names_l, codes = np.unique(ll, return_inverse=True)
        base = len(unit_source)
        for n in names_l:
            add_unit(LABELLED, str(n))
        s, a, b, gs, gu = _upper_pairs(le, (codes + base).astype(np.int32))
        parts_s.append(s)
        parts_a.append(a)
        parts_b.append(b)
        gen_s.append(gs)
        gen_u.append(gu)

    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))  # noqa: E731
    scores, ua, ub = cat(parts_s, np.float32), cat(parts_a, np.int32), cat(parts_b, np.int32)
    total = int(scores.size)
    if total > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
        scores, ua, ub = scores[keep], ua[keep], ub[keep]

    templates: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    multi = [(u, e) for u, e in g_units if len(e) > 1]
    if multi and len(g_units) > 1:
        for k in sorted({len(e) for _, e in multi}):
            owners = [u for u, e in multi if len(e) == k]
            temps = np.stack([template(e) for u, e in multi if len(e) == k])
            s = temps @ gallery_emb.T
            other = np.asarray(owners)[:, None] != gallery_units[None, :]
            ri, ci = np.nonzero(other)
            templates[k] = (s[other].astype(np.float32), np.asarray(owners, np.int32)[ri], gallery_units[ci])

    unit_photos = np.ones(len(unit_source), np.int32)
    for u, e in g_units:
        unit_photos[u] = len(e)
    if labelled is not None:
        unit_photos[base:] = np.bincount(codes, minlength=len(names_l))
    return SitePairs(scores=scores, a=ua, b=ub, genuine=cat(gen_s, np.float32), genuine_unit=cat(gen_u, np.int32),
                     unit_source=unit_source, names=names, photos=photos, total_pairs=total, templates=templates,
                     unit_photos=unit_photos)


__all__ = ["GALLERY", "LABELLED", "MAX_PAIRS", "SOURCES", "STRANGERS", "SitePairs", "collect_pairs", "template",
           "unit_rows"]
