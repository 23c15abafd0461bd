"""Embedders: dlib ResNet parity with dlib itself, batching, devices, weight cache, user ONNX models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

dlib = pytest.importorskip("dlib")

from facegate.align import (  # noqa: E402
    arcface,
    norm_crop,
    template,
)
from facegate.config import Config  # noqa: E402
from facegate.embed import get_embedder  # noqa: E402
from facegate.embed.dlib_resnet import DlibResNetEmbedder  # noqa: E402
from facegate.embed.onnx import ARCFACE_112, OnnxEmbedder  # noqa: E402
from facegate.errors import DeviceError, ModelError, UsageError  # noqa: E402
from facegate.models.converted import CONVERSIONS  # noqa: E402
from facegate.models.dlib_dat import parse_dlib_dnn, read_dlib_dnn  # noqa: E402
from facegate.models.dlib_torch import write_onnx  # noqa: E402
from facegate.models.registry import REGISTRY, register_onnx_embedder, verified_path  # noqa: E402


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def dat_path() -> Path:
    return verified_path(REGISTRY["dlib_resnet"])


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, object]]:
    """(image, dlib 5-point shape) for every face in two public sample photos."""
    import face_recognition_models
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    out = []
    for img in (skimage.data.astronaut(), hopper):
        img = np.ascontiguousarray(img)
        for rect in detector(img, 1):
            out.append((img, predictor(img, rect)))
    assert len(out) >= 2
    return out


@pytest.fixture(scope="module")
def chips(faces) -> np.ndarray:
    """dlib's own 150x150 chips of the faces, plus mirrored and brightness-shifted copies."""
    base = [dlib.get_face_chip(img, shape, 150, 0.25) for img, shape in faces]
    extra = []
    for c in base:
        extra.append(np.ascontiguousarray(c[:, ::-1]))
        extra.append(np.clip(c.astype(np.int16) + 40, 0, 255).astype(np.uint8))
        extra.append(np.clip(c.astype(np.int16) * 0.7, 0, 255).astype(np.uint8))
    return np.stack(base + extra)


@pytest.fixture(scope="module")
def recognizer(dat_path):
    return dlib.face_recognition_model_v1(str(dat_path))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("facegate_home")


@pytest.fixture(scope="module", params=["onnxruntime", "torch"])
def embedder(home, request) -> DlibResNetEmbedder:
    e = DlibResNetEmbedder(Config(home=home, flip=False, runtime=request.param))
    e.load()
    return e


# --------------------------------------------------------------------------- dlib .dat


def test_dat_parser_reads_the_whole_network(dat_path):
    net = read_dlib_dnn(dat_path)
    kinds = net.kinds()
    assert net.input.attrs["rows"] == net.input.attrs["cols"] == 150
    assert np.allclose(net.input.attrs["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-3)
    assert kinds.count("con") == kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14
    assert kinds[:4] == ["con", "affine", "relu", "max_pool"] and kinds[-2:] == ["avg_pool", "fc"]
    assert net.layers[0].arrays["weight"].shape == (32, 3, 7, 7)
    assert net.layers[-1].arrays["weight"].shape == (256, 128)


def test_dat_parser_refuses_truncated_or_foreign_bytes(dat_path):
    data = dat_path.read_bytes()
    with pytest.raises(ModelError):
        parse_dlib_dnn(data[: len(data) // 2])
    with pytest.raises(ModelError):
        parse_dlib_dnn(b"\x01\x01\x04junk" + data[20:200])


# --------------------------------------------------------------------------- parity


def test_raw_output_matches_dlib_on_dlib_chips(embedder, recognizer, chips):
    ours = embedder._forward(chips)
    ref = np.array([np.array(recognizer.compute_face_descriptor(c)) for c in chips], dtype=np.float32)
    cos = _cos(ours, ref)
    assert len(chips) >= 8
    assert cos.min() >= 0.9999, cos
    assert np.allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1), rtol=1e-3)


def test_norm_crop_chips_match_dlibs_full_pipeline(embedder, recognizer, faces):
    tmpl = template(150, 0.25)
    for img, shape in faces:
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        ours = embedder.embed(norm_crop(img, landmarks, tmpl)[None])[0]
        ref = np.array(recognizer.compute_face_descriptor(img, shape))
        assert _cos(ours, ref) >= 0.99


def test_batch_size_does_not_change_embeddings(home, chips):
    one = DlibResNetEmbedder(Config(home=home, batch_size=1)).embed(chips)
    many = DlibResNetEmbedder(Config(home=home, batch_size=16)).embed(chips)
    assert one.shape == (len(chips), 128)
    assert np.allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    assert np.allclose(one, many, atol=1e-5)


def test_embed_of_nothing_is_empty(embedder):
    assert embedder.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_missing_cuda_is_an_error_not_a_cpu_run(home):
    with pytest.raises(DeviceError):
        DlibResNetEmbedder(Config(home=home, device="cuda"))
    with pytest.raises(DeviceError):
        get_embedder(Config(home=home, device="cuda"))
    with pytest.raises(DeviceError):
        DlibResNetEmbedder(Config(home=home), half=True)  # fp16 is CUDA-only
    with pytest.raises(DeviceError):
        get_embedder(Config(home=home, fp16=True))  # the config switch reaches the same check


def test_fp16_has_its_own_embedding_cache_key(home):
    from facegate.evaluate.embedding import _signature

    base = Config(home=home)
    assert _signature(base, "center") != _signature(base.replace(fp16=True), "center")


def test_export_onnx_matches_torch(tmp_path, embedder, chips):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "dlib_resnet.onnx"
    write_onnx(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(chips[:3].transpose(0, 3, 1, 2).astype(np.float32))
    got = sess.run(None, {"chips": x})[0]
    assert _cos(got, embedder._forward(chips[:3])).min() >= 0.9999


# --------------------------------------------------------------------------- weight cache


def test_cpu_default_runtime_is_onnxruntime_and_agrees_with_torch(home, chips):
    ort_e = DlibResNetEmbedder(Config(home=home))
    torch_e = DlibResNetEmbedder(Config(home=home, runtime="torch"))
    assert ort_e.runtime == "onnxruntime" and torch_e.runtime == "torch"
    assert _cos(ort_e._forward(chips), torch_e._forward(chips)).min() >= 0.99999
    with pytest.raises(UsageError):
        DlibResNetEmbedder(Config(home=home, runtime="tensorflow"))


def _cached(cfg: Config, name: str) -> Path:
    return cfg.cache_dir / CONVERSIONS[name].filename(REGISTRY["dlib_resnet"].sha256)


@pytest.fixture()
def no_conversions_installed(tmp_path, monkeypatch) -> None:
    """A model store without converted files (an install by an older facegate): the embedder converts
    dlib's .dat into the home's cache, as these tests check. dlib's weights come from its pip package."""
    monkeypatch.setenv("FACEGATE_MODELS", str(tmp_path / "store-without-conversions"))


def test_onnx_cache_is_written_verified_and_rebuilt(tmp_path, chips, no_conversions_installed):
    cfg = Config(home=tmp_path / "home", flip=False)
    first = DlibResNetEmbedder(cfg)
    reference = first._forward(chips[:2])
    assert first.loaded_from == "converted"
    path = _cached(cfg, "dlib_resnet.onnx")
    assert path.exists() and path.with_name(path.name + ".json").exists()
    second = DlibResNetEmbedder(cfg)
    assert np.array_equal(second._forward(chips[:2]), reference)
    assert second.loaded_from == "cache"
    good = path.read_bytes()
    path.write_bytes(good[:-64] + bytes(64))  # damaged: no longer matches its recorded sha256
    third = DlibResNetEmbedder(cfg)
    assert np.allclose(third._forward(chips[:2]), reference, atol=1e-5)
    assert third.loaded_from == "converted"
    assert path.read_bytes() == good  # rewritten, the same graph
    assert DlibResNetEmbedder(cfg).load() is not None and DlibResNetEmbedder(cfg)._forward(chips[:1]).shape == (1, 128)


def test_cache_is_written_then_used(tmp_path, chips, no_conversions_installed):
    cfg = Config(home=tmp_path / "home", flip=False, runtime="torch")
    first = DlibResNetEmbedder(cfg)
    a = first._forward(chips[:2])
    assert first.loaded_from == "converted"
    assert _cached(cfg, "dlib_resnet.pt").exists()
    second = DlibResNetEmbedder(cfg)
    b = second._forward(chips[:2])
    assert second.loaded_from == "cache"
    assert np.array_equal(a, b)


@pytest.mark.parametrize("damage", ["weights", "source_sha", "garbage"])
def test_untrustworthy_cache_is_rebuilt(tmp_path, chips, damage, no_conversions_installed):
    cfg = Config(home=tmp_path / "home", flip=False, runtime="torch")
    reference = DlibResNetEmbedder(cfg)._forward(chips[:2])
    path = _cached(cfg, "dlib_resnet.pt")
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:
        blob = torch.load(path, weights_only=True)
        if damage == "weights":
            blob["state_dict"]["fc.weight"].mul_(-1.0)
        else:
            blob["source_sha256"] = "0" * 64
        torch.save(blob, path)
    again = DlibResNetEmbedder(cfg)
    assert np.array_equal(again._forward(chips[:2]), reference)
    assert again.loaded_from == "converted"
    assert DlibResNetEmbedder(cfg).load() is not None  # and the rebuilt cache is good again
    fresh = DlibResNetEmbedder(cfg)
    fresh.load()
    assert fresh.loaded_from == "cache"


# --------------------------------------------------------------------------- user ONNX models


def _tiny_onnx(path: Path, shape: list, dim: int = 8) -> str:
    """Global average pool over an image batch, then a fixed 3 x dim matrix: an 'embedder'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(3 * dim, dtype=np.float32).reshape(3, dim) / 10.0 - 1.0
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["img"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["emb"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_user_onnx_embedder_end_to_end(tmp_path):
    model = tmp_path / "tiny.onnx"
    sha = _tiny_onnx(model, ["N", 3, 112, 112])
    cfg = Config(home=tmp_path / "home", embedder="tiny")
    spec = register_onnx_embedder("tiny", model, sha, config=cfg)
    assert spec.output_size == 8 and spec.input_size == 112

    emb = get_embedder(cfg)
    assert isinstance(emb, OnnxEmbedder) and emb.dim == 8 and emb.template.size == 112
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, size=(5, 112, 112, 3), dtype=np.uint8)
    out = emb.embed(chips)
    assert out.shape == (5, 8) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # ArcFace preprocessing: (x - 127.5) / 127.5, then the model (mirroring does not change a mean)
    pooled = ((chips.astype(np.float64) - 127.5) / 127.5).mean(axis=(1, 2))
    expect = pooled @ (np.arange(24, dtype=np.float64).reshape(3, 8) / 10.0 - 1.0)
    expect /= np.linalg.norm(expect, axis=1, keepdims=True)
    assert np.allclose(out, expect, atol=1e-4)

    model.write_bytes(model.read_bytes() + b"\0")  # swapped after registration: refused at load
    with pytest.raises(ModelError):
        get_embedder(cfg).embed(chips)


def test_user_onnx_wrong_sha256_is_refused(tmp_path):
    model = tmp_path / "tiny.onnx"
    _tiny_onnx(model, ["N", 3, 112, 112])
    with pytest.raises(ModelError):
        register_onnx_embedder("tiny", model, "ab" * 32, config=Config(home=tmp_path))


@pytest.mark.parametrize("shape", [["N", 3, 112, 96], ["N", 3, 128, 128], ["N", 1, 112, 112]])
def test_user_onnx_wrong_input_shape_is_refused(tmp_path, shape):
    model = tmp_path / "bad.onnx"
    sha = _tiny_onnx(model, shape) if shape[1] == 3 else _tiny_onnx_gray(model)
    with pytest.raises(ModelError, match="input"):
        register_onnx_embedder("bad", model, sha, config=Config(home=tmp_path))


def _tiny_onnx_gray(path: Path) -> str:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["img"], ["p"]), helper.make_node("Flatten", ["p"], ["emb"], axis=1)],
        "gray",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 1, 112, 112])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_user_onnx_nhwc_input_is_accepted(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["img"], ["emb"], axes=[1, 2], keepdims=0)],
        "nhwc",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 112, 112, 3])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "nhwc.onnx"
    onnx.save(model, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    cfg = Config(home=tmp_path, embedder="nhwc", flip=False)
    assert register_onnx_embedder("nhwc", path, sha, config=cfg).output_size == 3
    chips = np.zeros((2, 112, 112, 3), np.uint8)
    chips[..., 0] = 255  # pure red: only the first channel is positive after preprocessing
    out = get_embedder(cfg).embed(chips)
    assert np.allclose(out, np.array([[1.0, -1.0, -1.0]]) / np.sqrt(3), atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_user_onnx_missing_cuda_is_an_error(tmp_path):
    model = tmp_path / "tiny.onnx"
    sha = _tiny_onnx(model, ["N", 3, 112, 112])
    cfg = Config(home=tmp_path, embedder="tiny")
    register_onnx_embedder("tiny", model, sha, config=cfg)
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime has CUDA support")
    with pytest.raises(DeviceError):
        get_embedder(cfg.replace(device="cuda"))


def test_user_onnx_models_align_on_native_arcface_points(tmp_path):
    """A registered ONNX model is aligned with insightface's template on the mtcnn5 points (no
    dlib-derived template any more), and its preprocessing comes from the registration."""
    model = tmp_path / "tiny.onnx"
    sha = _tiny_onnx(model, ["N", 3, 112, 112])
    cfg = Config(home=tmp_path, embedder="tiny2")
    spec = register_onnx_embedder("tiny2", model, sha, config=cfg, pixel_mean=0.0, pixel_scale=1 / 255, channels="bgr")
    emb = get_embedder(cfg)
    assert emb.template.scheme == "mtcnn5" and np.allclose(emb.template.points, ARCFACE_112)
    assert np.allclose(arcface(224).points, ARCFACE_112 * 2)
    assert (spec.pixel_mean, spec.channels, spec.implementation) == (0.0, "bgr", "onnx")
    chips = np.zeros((1, 112, 112, 3), np.uint8)
    chips[..., 2] = 255  # blue in RGB: the first channel once reordered to BGR
    x = emb.prepare(chips)
    assert x.shape == (1, 3, 112, 112) and x[0, 0].max() == 1.0 and x[0, 2].max() == 0.0
