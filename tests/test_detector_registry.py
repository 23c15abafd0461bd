"""facegate.models.detectors: every detector is one class and one registry entry, and what the rest
of facegate needs of a detector is read from that entry."""

from __future__ import annotations

import math

import pytest

from facegate.align import DLIB5, MTCNN5
from facegate.config import Config
from facegate.detect import Detector, detector_class, get_detector
from facegate.errors import UsageError
from facegate.models.detectors import (
    DETECTOR_SPECS,
    DETECTORS,
    box_refinement,
    detector_spec,
    min_face,
    stack_detector,
)
from facegate.models.registry import REGISTRY


@pytest.mark.parametrize("name", DETECTORS)
def test_every_spec_is_complete(name):
    spec = detector_spec(name)
    assert spec.name == name and DETECTOR_SPECS[name] is spec
    assert spec.implementation.startswith("facegate.detect.")
    cls = detector_class(spec)  # imports the module, constructs nothing
    assert issubclass(cls, Detector) and cls.name == name
    assert spec.weights and all(REGISTRY[w].sha256 for w in spec.weights)
    assert spec.schemes and set(spec.schemes) <= {DLIB5, MTCNN5}
    assert set(spec.native_schemes(True)) >= set(spec.schemes)
    assert isinstance(spec.refinable, bool)
    assert 0 < spec.min_face <= 80 and spec.cost
    assert all(s > 0 for s in spec.input_sizes)
    s = spec.score
    assert math.isfinite(s.a) and s.a > 0 and math.isfinite(s.b)
    assert 0.0 < s.calibrated(s.raw_cut(0.5)) < 1.0


def test_unknown_detector_is_a_usage_error_naming_the_choices():
    with pytest.raises(UsageError, match="unknown detector 'retina'.*blazeface, hog, mtcnn"):
        get_detector(Config(detector="retina"))
    with pytest.raises(UsageError, match="choose one of"):
        detector_spec("")


def test_get_detector_builds_the_registered_class_lazily():
    det = get_detector(Config(detector="hog"))
    assert type(det).__name__ == "HogDetector" and det.spec is DETECTOR_SPECS["hog"]
    assert det.min_face == DETECTOR_SPECS["hog"].min_face
    assert get_detector(Config(detector="hog", min_face_size=70)).min_face == 70


def test_what_the_rest_of_facegate_reads_from_the_specs():
    """The stack key's detector part, native schemes, box refinement and smallest face, as the
    decision layer and the evaluations have always computed them."""
    assert DETECTORS == ("blazeface", "hog", "mtcnn")  # the CLI's --detector choices, in this order
    assert stack_detector(Config()) == ("blazeface+onet", (MTCNN5, DLIB5))
    assert stack_detector(Config(refine_boxes=False)) == ("blazeface", (DLIB5,))
    assert stack_detector(Config(detector="mtcnn")) == ("mtcnn", (MTCNN5, DLIB5))
    assert stack_detector(Config(detector="hog")) == ("hog", (DLIB5,))
    assert stack_detector(Config(detector="nobody")) == ("nobody", ())  # no table: nothing is native
    assert box_refinement(Config()) and not box_refinement(Config(refine_boxes=False))
    assert not box_refinement(Config(detector="mtcnn")) and not box_refinement(Config(detector="hog"))
    assert [min_face(Config(), n) for n in DETECTORS] == [16, 40, 40]
    assert min_face(Config(detector="mtcnn")) == 40 and min_face(Config(min_face_size=25), "hog") == 25


def test_stack_keys_come_from_the_specs():
    from facegate.decide.tables import stack_key

    assert stack_key(Config()) == "mobilefacenet|blazeface+onet|mtcnn5|flip"
    assert stack_key(Config(embedder="dlib_resnet", refine_boxes=False)) == "dlib_resnet|blazeface|dlib5|flip"
    assert stack_key(Config(detector="hog", flip=False)) == "mobilefacenet|hog|mtcnn5~derived|noflip"
