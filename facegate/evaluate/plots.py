"""Plots a person would rather look at than read: ROC curves and score histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def plot_roc(far: np.ndarray, tar: np.ndarray, path: Path, label: str, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    mask = far > 0
    ax.semilogx(far[mask], tar[mask], label=label, lw=1.8)
    ax.set_xlabel("false accept rate (impostor pairs accepted)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.set_xlim(max(far[mask].min(), 1e-5) if mask.any() else 1e-4, 1)
    ax.set_ylim(min(0.9, float(tar[mask].min()) if mask.any() else 0.9), 1.001)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_histogram(scores: np.ndarray, same: np.ndarray, path: Path, thresholds: dict[str, float], title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    lo = float(scores.min())
    bins = np.linspace(lo - 0.02 * (1 - lo), 1.0, 90)
    ax.hist(scores[same], bins=bins, alpha=0.6, label=f"same person ({int(same.sum())})", color="tab:green")
    ax.hist(scores[~same], bins=bins, alpha=0.6, label=f"different people ({int((~same).sum())})", color="tab:red")
    for i, (name, t) in enumerate(thresholds.items()):
        ax.axvline(t, color=["k", "tab:blue", "tab:purple", "tab:orange"][i % 4], ls="--", lw=1, label=f"{name}: {t:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
