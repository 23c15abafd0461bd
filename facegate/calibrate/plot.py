"""The picture of a site calibration: where the site's scores lie against the shipped ones.

Left: score histograms (as densities) of the site's impostor pairs and, where there are any,
its genuine pairs, with the shipped impostor distribution (reconstructed from its recorded
quantiles) and the site model (the shipped one moved and scaled). Right: the share of impostor
pairs above each threshold on a log scale: the shipped curve, the site model with its interval,
and the site's own pairs as far down as they reach, which is where a person sees whether the
model follows the site's tail.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from facegate.calibrate.estimate import AffineMap, Curve
from facegate.calibrate.pairs import SitePairs
from facegate.calibrate.stats import ShippedStats
from facegate.calibrate.table import SiteTable


def _shipped_survival(shipped: ShippedStats, points: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds ascending, share above) of the shipped distribution: its body, then its curve."""
    body = list(zip(shipped.single.thresholds, shipped.single.probs))
    tail = [(float(p.threshold), float(p.far)) for p in points if p.far < min(shipped.single.probs)]
    pts = sorted(body + tail)
    return np.asarray([t for t, _ in pts]), np.asarray([p for _, p in pts])


def plot_site(
    path: str | os.PathLike[str], pairs: SitePairs, shipped: ShippedStats, points: Sequence[Any], table: SiteTable,
    title: str = "site calibration",
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    fmap = AffineMap(float(table.map["a"]), float(table.map["b"]))
    t_ship, p_ship = _shipped_survival(shipped, points)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)

    lo = float(min(pairs.scores.min() if pairs.pairs else 0.0, t_ship[0])) - 0.05
    hi = float(max(1.0 if pairs.genuine.size else 0.0, pairs.scores.max() if pairs.pairs else 0.0, t_ship[-1])) + 0.02
    bins = np.linspace(lo, hi, 70)
    # shipped density from its survival points: -dS/dt between recorded thresholds
    mids = (t_ship[1:] + t_ship[:-1]) / 2
    dens = -np.diff(p_ship) / np.maximum(np.diff(t_ship), 1e-9)
    ax.plot(mids, dens, color="tab:gray", lw=1.5, label=f"shipped impostors ({shipped.single.pairs:,} LFW pairs)")
    ax.plot(fmap(mids), dens / fmap.b, color="tab:blue", lw=1.2, ls="--", label="site model (shipped moved and scaled)")
    if pairs.pairs:
        ax.hist(pairs.scores, bins=bins, density=True, alpha=0.45, color="tab:red", label=f"site impostor pairs ({pairs.pairs:,})")
    if pairs.genuine.size:
        ax.hist(pairs.genuine, bins=bins, density=True, alpha=0.45, color="tab:green", label=f"site genuine pairs ({pairs.genuine.size:,})")
    for f, ls in ((1e-3, ":"), (1e-4, "--")):
        p = table.point(f)
        if p is not None:
            ax.axvline(p.shipped_threshold, color="tab:gray", ls=ls, lw=1)
            ax.axvline(p.threshold, color="tab:blue", ls=ls, lw=1,
                       label=f"FAR {f:g}: shipped {p.shipped_threshold:.3f}, site {p.threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7)

    curve = Curve.of(points)
    fars = np.asarray([p.far for p in table.points])
    bx.semilogy(t_ship, p_ship, color="tab:gray", lw=1.5, label="shipped")
    site_t = np.asarray([p.threshold for p in table.points])
    bx.semilogy(site_t, fars, color="tab:blue", lw=1.5, label="site model")
    bx.fill_betweenx(fars, [p.low for p in table.points], [p.high for p in table.points], color="tab:blue", alpha=0.2,
                     label=f"{int(100 * table.inputs.get('level', 0.9))}% interval (bootstrap over people)")
    if pairs.pairs:
        s = np.sort(pairs.scores)[::-1]
        share = np.arange(1, s.size + 1) / s.size
        bx.semilogy(s, share, color="tab:red", lw=1, label="site pairs (empirical)")
    bx.set_xlim(lo, max(float(site_t.max()), curve.threshold(1e-6)) + 0.02)
    bx.set_ylim(min(fars.min(), 1e-6) / 2, 1.0)
    bx.set_xlabel("threshold")
    bx.set_ylabel("share of impostor pairs above (FAR)")
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    plt.close(fig)


__all__ = ["plot_site"]
