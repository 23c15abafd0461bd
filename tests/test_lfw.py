"""Integration on the shared data sets (skipped when ../shared/datasets is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facegate.errors import DatasetError
from facegate.evaluate.lfw import evaluate_lfw, read_pairs

pytestmark = pytest.mark.datasets


def test_pairs_file_parses_to_view2(datasets):
    pairs = read_pairs(datasets / "lfw", datasets / "lfw" / "pairs.txt")
    assert len(pairs) == 6000
    assert sum(p.same for p in pairs) == 3000
    assert sorted({p.fold for p in pairs}) == list(range(10))
    assert all(p.a.exists() and p.b.exists() for p in pairs[:50])


def test_malformed_pairs_file(tmp_path, datasets):
    bad = tmp_path / "pairs.txt"
    bad.write_text("10\t300\nAbel_Pacheco\t1\n")
    with pytest.raises(DatasetError):
        read_pairs(datasets / "lfw", bad)


@pytest.mark.slow
def test_one_lfw_fold_accuracy_floor(datasets, pipeline, tmp_path):
    """A tripwire for a broken pipeline (0.97 floor on fold 0), not the accuracy claim."""
    result, emb, scores, pairs = evaluate_lfw(
        pipeline, datasets / "lfw", datasets / "lfw" / "pairs.txt", out_dir=tmp_path, folds=[0], progress=False
    )
    assert result.n_pairs == 600
    assert result.accuracy_mean >= 0.97, result.accuracy_mean
    assert result.auc > 0.99
    # Every image is accounted for, and the outputs a person looks at exist.
    assert sum(result.outcomes.values()) == result.n_images
    assert (tmp_path / "lfw_roc.png").stat().st_size > 10_000
    assert (tmp_path / "lfw_scores.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "lfw_result.json").read_text())["n_pairs"] == 600
    # Same-person pairs score higher than different-person pairs on average, by a clear margin
    # (dlib's descriptors live in a narrow cone: the means are about 0.96 and 0.83).
    same = np.array([p.same for p in pairs])
    assert scores[same].mean() - scores[~same].mean() > 0.08


@pytest.mark.slow
def test_people_small_verification(datasets, pipeline):
    """Photos of the same person in people_small verify as same; different people as different."""
    train = datasets / "people_small" / "train"
    faces = {}
    for person in sorted(p for p in train.iterdir() if p.is_dir()):
        faces[person.name] = [pipeline.face(f, pick="largest") for f in sorted(person.iterdir())]
    for name, fs in faces.items():
        for i in range(len(fs)):
            for j in range(i + 1, len(fs)):
                assert pipeline.compare(fs[i], fs[j]).same, (name, i, j)
    names = sorted(faces)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not pipeline.compare(faces[a][0], faces[b][0]).same, (a, b)
