"""Calibrated detector scores, ``min_score`` / ``--min-score``, and the detection benchmark's fast subset.

Package photos only (Grace Hopper, the astronaut) and generated frames; no data set needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Config
from facegate.detect import get_detector
from facegate.detect.scores import calibrated, cut_score, raw_feature
from facegate.evaluate import detection as D
from facegate.models.detectors import DETECTOR_SPECS

NAMES = ("blazeface", "mtcnn", "hog")


@pytest.fixture(scope="module")
def dets():
    return {n: get_detector(Config(detector=n)) for n in NAMES}


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_same_face_gets_comparable_scores(dets, which, request):
    image = request.getfixturevalue(which)
    scores = {}
    for n, det in dets.items():
        faces = det.detect(image)
        assert faces, n
        f = faces[0]
        assert 0.0 <= f.score <= 1.0
        assert f.extra["raw_score"] != f.score or n not in DETECTOR_SPECS
        scores[n] = f.score
    # one clear, frontal face: every detector is confident on the common scale
    assert min(scores.values()) > 0.8, scores
    assert max(scores.values()) - min(scores.values()) < 0.2, scores


def test_calibration_is_monotonic_and_bounded():
    for n in NAMES:
        raws = [-2.0, 0.0, 0.5, 1.0, 3.0] if n == "hog" else [0.01, 0.3, 0.5, 0.9, 0.999]
        vals = [calibrated(n, r) for r in raws]
        assert all(0.0 <= v <= 1.0 for v in vals)
        assert vals == sorted(vals), (n, vals)
        assert cut_score(n, 0.3) < cut_score(n, 0.5) < cut_score(n, 0.7)
    assert raw_feature("blazeface", 0.5) == pytest.approx(0.0)
    assert calibrated("unknown-detector", 0.42) == 0.42


@pytest.mark.parametrize("name", NAMES)
def test_min_score_is_applied_by_every_detector(name, hopper):
    assert get_detector(Config(detector=name, min_score=0.0)).detect(hopper)
    assert get_detector(Config(detector=name, min_score=0.99999)).detect(hopper) == []


def test_cli_min_score(home, hopper_path, tmp_path, capsys):
    import json

    from facegate.cli import main

    assert main(["--home", str(home), "detect", str(hopper_path), "--min-score", "1.5"]) == 2
    assert "min-score" in capsys.readouterr().err
    assert main(["--home", str(home), "detect", str(hopper_path), "--min-score", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    faces = out["faces"]
    assert faces and all(0.5 <= f["score"] <= 1.0 for f in faces)
    assert main(["--home", str(home), "detect", str(hopper_path), "--min-score", "0.99999", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []


def test_fit_logistic_recovers_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, 4000)
    y = rng.random(4000) < 1 / (1 + np.exp(-(1.5 * x - 0.7)))
    a, b = D.fit_logistic(x, y)
    assert a == pytest.approx(1.5, abs=0.2) and b == pytest.approx(-0.7, abs=0.2)


def test_benchmark_subset(dets):
    """A tiny generated subset: every band, pose and frame kind is made and scored; the
    frame-filling faces and crops tighter than the head are found."""
    from facegate.detect.landmarks import DlibLandmarker

    sources = D.package_sources(DlibLandmarker(Config()).fit)
    assert len(sources) == 2 and all(s.landmarks is not None for s in sources)
    frames = D.make_frames(sources, 2, seed=3, frame_filling=2, tight=2)
    assert {f.kind for f in frames} == {"640x480", "1280x720", "frame", "tight"}
    tallies, scored = D.evaluate(dets["blazeface"].detect, frames)
    assert tallies["all"].faces == sum(len(f.faces) for f in frames)
    assert tallies["band:frame"].recall == 1.0 and tallies["band:tight"].recall == 1.0
    assert all(0 <= e < 0.1 for e in tallies["band:frame"].lm_err)  # landmarks near the reference
    assert len(scored) >= tallies["all"].found
    # matching: a box at the true place matches, one off by a face side does not
    t = frames[-1].faces[0]
    assert D.match([t], t.box[None]) == [0]
    assert D.match([t], (t.box + (t.box[2] - t.box[0]))[None]) == [-1]
