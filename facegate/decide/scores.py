"""What a score is: the cosine of two unit embeddings of the same model.

Scores of embeddings from two different models are meaningless (each model has its own
space), so every comparison first checks the models agree (:func:`check_model`).
"""

from __future__ import annotations

import numpy as np

from facegate.errors import ModelMismatchError


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (unit vectors in practice)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def check_model(stored: str | None, current: str) -> None:
    """Refuse to compare embeddings of two models (the gallery's and the pipeline's)."""
    if stored is not None and stored != current:
        raise ModelMismatchError(
            f"this gallery holds embeddings from model {stored!r}, but the current model is {current!r}; "
            f"scores across models are meaningless. Use the gallery's model, or convert the gallery "
            f"with 'facegate reembed'"
        )


__all__ = ["check_model", "cosine"]
