"""The default detector on every face-size band, from the benchmark's compositing (facegate.evaluate.detection).

The package photos (Grace Hopper, the astronaut) pasted at known sizes into 1280x720 frames, upright
(the benchmark itself, benchmarks/bench_detect.py, adds LFW faces, rolls and 640x480 frames). Fixed
seeds: the same frames every run, so a drop in recall fails here first.
"""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Config
from facegate.detect import get_detector
from facegate.detect.blazeface import PLAN_MIN_FACE
from facegate.detect.scores import calibrated
from facegate.evaluate import detection as D

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def sources():
    src = D.package_sources()
    if len(src) < 2:
        pytest.skip("matplotlib's or scikit-image's sample photo is missing")
    return src


@pytest.fixture(scope="module")
def det():
    return get_detector(Config())


def _frames(sources, band: tuple[str, int, int], n: int, seed: int) -> list[D.Frame]:
    frames = D.make_frames(sources, n, seed=seed, bands=(band,), poses=("upright", "mirrored", "grey"))
    return [f for f in frames if f.kind == "1280x720"]


def _recall(det, frames: list[D.Frame]) -> tuple[float, int, list]:
    tallies, _ = D.evaluate(det.detect, frames)
    t = tallies["all"]
    return t.recall, t.false_pos, [f for fr in frames for f in det.detect(fr.image)]


# Least recall per band on these frames (measured 0.80-0.89 for 20-40 px over seeds 11-13 with
# the two package photos only; the benchmark, with LFW faces, reports the band in RESULTS.md).
LEAST = {"20-40": 0.75, "40-80": 0.9, "80-160": 0.9, "160-320": 0.9}


@pytest.mark.parametrize("band", D.BANDS, ids=[b[0] for b in D.BANDS])
def test_recall_per_size_band_at_720p(det, sources, band):
    frames = _frames(sources, band, 6, seed=11)
    recall, false_pos, _ = _recall(det, frames)
    assert recall >= LEAST[band[0]], (band, recall)
    assert false_pos <= len(frames), false_pos


def test_small_faces_come_from_screened_weak_candidates(det, sources):
    """20-40 px faces at 1280x720 are 8-16 px at the model's input: found as weak candidates that
    R-Net and O-Net confirm, and scored on MTCNN's calibrated scale."""
    frames = _frames(sources, ("20-40", 20, 40), 4, seed=11)
    _, _, faces = _recall(det, frames)
    small = [f for f in faces if f.extra.get("proposal")]
    assert small, "no face came from a weak candidate"
    for f in small:
        assert 0.0 < f.score <= 1.0
        assert f.score == pytest.approx(calibrated("mtcnn", f.extra["raw_score"]))
        assert f.extra["blazeface_score"] < Config().detection_threshold
    # the tile plan is cut for faces of PLAN_MIN_FACE: most of these come from the weak candidates
    assert len(small) >= len(faces) / 2, (len(small), len(faces))


def test_frame_filling_and_tight_crops(det, sources):
    frames = D.make_frames(sources, 0, seed=3, frame_filling=4, tight=4)
    recall, false_pos, _ = _recall(det, frames)
    assert recall == 1.0 and false_pos == 0, (recall, false_pos)


def test_smallest_face_is_per_detector():
    from facegate.models.detectors import min_face

    cfg = Config()
    assert cfg.min_face_size == 0
    assert min_face(cfg, "blazeface") < 20 < PLAN_MIN_FACE <= min_face(cfg, "hog") == min_face(cfg, "mtcnn")
    assert min_face(Config(min_face_size=55), "hog") == 55
    assert get_detector(Config(detector="hog")).min_face == min_face(cfg, "hog")
    from facegate.errors import UsageError

    with pytest.raises(UsageError):
        Config(min_face_size=-1)


def test_asking_for_large_faces_only_skips_the_small_face_pass(sources):
    frames = _frames(sources, ("20-40", 20, 40), 2, seed=11)
    det = get_detector(Config(min_face_size=PLAN_MIN_FACE))
    faces = [f for fr in frames for f in det.detect(fr.image)]
    assert all(np.sqrt(f.width * f.height) >= PLAN_MIN_FACE for f in faces)
    assert not any(f.extra.get("proposal") for f in faces)
