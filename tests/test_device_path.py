"""The device path's torch code on the CPU device: the twin of every GPU branch.

Warps against ``align.norm_crop``, dlib's five points against dlib, NMS against MTCNN's host
NMS, the loader (order, bounded queue, a corrupt file), the seam ``embed_tensor`` against
``embed``, and the whole path against the CPU path on the package photos.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facegate.align import chip_matrix, norm_crop, template
from facegate.bulk import device as dp
from facegate.config import Config
from facegate.errors import DeviceError


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    from matplotlib import cbook
    from PIL import Image

    skdata = pytest.importorskip("skimage.data")
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.array(Image.open(fh).convert("RGB"))
    return [hopper, np.ascontiguousarray(skdata.astronaut())]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config(detector="mtcnn", embedder="dlib_resnet", threads=2, home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def cpu_faces(photos, config):
    from facegate.pipeline import Pipeline

    return Pipeline(config).faces_batch(photos)


@pytest.fixture(scope="module")
def device_path(config) -> dp.DevicePath:
    return dp.DevicePath(config)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# --------------------------------------------------------------------------- warp


def _landmark_sets(photos, cpu_faces) -> list[tuple[int, np.ndarray]]:
    """The detected faces' landmarks, plus scaled and rotated copies: chips of 0.7 to 4 image
    pixels per chip pixel, so both of norm_crop's branches (plain, and shrink first) are hit."""
    out = []
    for i, faces in enumerate(cpu_faces):
        for face in faces:
            lm = face.landmarks.astype(np.float64)
            c = lm.mean(0)
            for s, deg in ((1.0, 0), (0.4, 10), (1.6, -15), (0.25, 0)):
                a = np.deg2rad(deg)
                rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
                out.append((i, ((lm - c) @ rot.T * s + c).astype(np.float32)))
    return out


@pytest.mark.parametrize("size,padding", [(150, 0.25), (112, 0.0)])
def test_chip_matrices_equal_norm_crops(photos, cpu_faces, size, padding):
    tmpl = template(size, padding)
    sets = _landmark_sets(photos, cpu_faces)
    got = dp.chip_matrices(torch.from_numpy(np.stack([lm for _, lm in sets])), tmpl).numpy()
    want = np.stack([chip_matrix(lm, tmpl) for _, lm in sets])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("size,padding", [(150, 0.25), (112, 0.0)])
def test_warp_matches_norm_crop(photos, cpu_faces, size, padding):
    tmpl = template(size, padding)
    sets = _landmark_sets(photos, cpu_faces)
    px = [float(np.sqrt(abs(np.linalg.det(chip_matrix(lm, tmpl)[:, :2])))) for _, lm in sets]
    assert min(px) < 2.0 < max(px)  # both branches of norm_crop exercised
    images = [dp.to_device_image(p, "cpu") for p in photos]
    idx = torch.tensor([i for i, _ in sets])
    chips = dp.warp_chips(images, idx, torch.from_numpy(np.stack([lm for _, lm in sets])), tmpl)
    got = chips.permute(0, 2, 3, 1).numpy()
    for (i, lm), g in zip(sets, got):
        want = norm_crop(photos[i], lm, tmpl).astype(np.float64)
        diff = np.abs(g - want)
        # OpenCV's uint8 warp quantises positions to 1/32 px and weights to fixed point.
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4, (diff.mean(), np.percentile(diff, 99))


# --------------------------------------------------------------------------- five points


def test_landmarks_equal_dlibs(photos, config):
    import dlib

    from facegate.detect.landmarks import DlibLandmarker

    hog = dlib.get_frontal_face_detector()
    rng = np.random.default_rng(0)
    boxes, idx = [], []
    for i, img in enumerate(photos):
        r = hog(img, 1)[0]
        b0 = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64)
        side = b0[2] - b0[0]
        boxes += [b0 + rng.normal(0, 0.05 * side, 4) for _ in range(6)]
        boxes.append(b0 + np.array([-1.3, -0.7, 0.5, 0.5]) * side)  # reaching past the border
        idx += [i] * 7
    boxes = np.asarray(boxes, dtype=np.float32)
    idx = np.asarray(idx)
    ref = DlibLandmarker(config)
    want = np.concatenate([ref.fit(photos[i], boxes[idx == i]) for i in range(len(photos))])
    fitter = dp.DeviceLandmarks(config, "cpu")
    got = fitter.fit([dp.to_device_image(p, "cpu") for p in photos], torch.from_numpy(idx), torch.from_numpy(boxes))
    np.testing.assert_array_equal(got.numpy(), want)


# --------------------------------------------------------------------------- NMS


@pytest.mark.parametrize("mode", ["union", "min"])
def test_nms_matches_mtcnns(mode):
    from facegate.detect.boxes import nms

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2))], axis=1)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    groups = rng.integers(0, 3, 300)
    got = dp.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups), 0.5, mode)
    for g in range(3):
        sel = np.nonzero(groups == g)[0]
        want = sel[nms(boxes[sel], scores[sel], 0.5, mode)]
        assert list(got.numpy()[groups[got.numpy()] == g]) == list(want)


# --------------------------------------------------------------------------- loader


def _write_photos(folder: Path, photos, n: int) -> list[Path]:
    from PIL import Image

    files = []
    for k in range(n):
        f = folder / f"p{k:02d}.jpg"
        img = photos[k % len(photos)][: 100 + k, : 120 + k]  # distinct sizes: order is checkable
        Image.fromarray(np.ascontiguousarray(img)).save(f, quality=90)
        files.append(f)
    return files


def test_loader_keeps_order_and_reports_corrupt_files(tmp_path, photos, config):
    files = _write_photos(tmp_path, photos, 7)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files.insert(3, tmp_path / "bad.jpg")
    files.append(tmp_path / "missing.jpg")
    with dp.Loader(files, config, batch=3, prefetch=1, threads=2) as loader:
        decoded = [item for batch in loader for item in batch]
    assert [name for name, _, _ in decoded] == [str(f) for f in files]
    errors = {name: err for name, img, err in decoded if err is not None}
    assert set(errors) == {str(tmp_path / "bad.jpg"), str(tmp_path / "missing.jpg")}
    assert all(code == "invalid_image" for code, _ in errors.values())
    sizes = [img.shape[:2] for _, img, err in decoded if err is None]
    assert sizes == [(100 + k, 120 + k) for k in range(7)]


def test_loader_queue_is_bounded(tmp_path, photos, config):
    files = _write_photos(tmp_path, photos, 12)
    decoded_count = 0
    lock = threading.Lock()

    class Counting(dp.Loader):
        def _host(self, name, path):
            nonlocal decoded_count
            with lock:
                decoded_count += 1
            return super()._host(name, path)

    seen = []
    with Counting(files, config, batch=2, prefetch=1, threads=2) as loader:
        for k, _batch in enumerate(loader):
            time.sleep(0.05)  # a slow consumer: the producer must wait, not run ahead
            with lock:
                ahead = decoded_count - 2 * (k + 1)
            seen.append(ahead)
            assert loader.queue.qsize() <= 1
    # At most one batch in the queue and one being decoded beyond what was consumed.
    assert max(seen) <= 2 * 2
    assert decoded_count == 12


def test_loader_stops_early_without_hanging(tmp_path, photos, config):
    files = _write_photos(tmp_path, photos, 10)
    with dp.Loader(files, config, batch=1, prefetch=1, threads=1) as loader:
        first = next(iter(loader))
    assert first[0][0] == str(files[0])
    assert loader._thread is not None and not loader._thread.is_alive()


# --------------------------------------------------------------------------- the whole path


def test_embed_tensor_matches_embed(photos, cpu_faces, config):
    from facegate.embed import get_embedder

    emb = get_embedder(config.replace(runtime="torch"))
    chips = np.stack([norm_crop(photos[i], f.landmarks, emb.template) for i, fs in enumerate(cpu_faces) for f in fs])
    got = emb.embed_tensor(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()
    want = get_embedder(config).embed(chips)  # ONNX Runtime, the CPU default
    assert np.all(np.sum(got * want, axis=1) > 0.9999)


def test_device_path_faces_match_cpu_path(photos, cpu_faces, device_path):
    dev_faces = device_path.faces_batch(photos)
    assert [len(f) for f in dev_faces] == [len(f) for f in cpu_faces] and sum(map(len, cpu_faces)) >= 2
    for cpu, dev in zip(cpu_faces, dev_faces):
        for a, b in zip(cpu, dev):
            assert b.detector == "mtcnn" and b.box.shape == (4,) and b.landmarks.shape == (5, 2)
            assert _iou(a.box, b.box) > 0.8
            assert abs(a.score - b.score) < 0.01
            assert float(a.embedding @ b.embedding) > 0.99
            assert abs(float(np.linalg.norm(b.embedding)) - 1) < 1e-5


def test_device_path_blank_and_mixed_sizes(device_path, photos):
    blank = np.zeros((90, 130, 3), dtype=np.uint8)
    out = device_path.faces_batch([blank, photos[1], blank[:50]])
    assert len(out[0]) == 0 and len(out[2]) == 0 and len(out[1]) >= 1


def test_bulk_embedding_on_the_device_path(tmp_path, photos, device_path, monkeypatch):
    from facegate import bulk
    from facegate.pipeline import Pipeline

    files = _write_photos(tmp_path, photos, 2)
    (tmp_path / "zz_bad.jpg").write_bytes(b"not an image")
    monkeypatch.setattr(dp, "DevicePath", lambda config: device_path)  # models loaded once per module
    out = tmp_path / "faces.jsonl"
    counts = bulk.embed_to_jsonl(Pipeline(device_path.config), [tmp_path], out, progress=False, device_path=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts["errors"] == 1 and records[-1]["error"] == "invalid_image"
    assert [r["file"] for r in records][:1] == [str(files[0])]
    assert counts["faces"] + counts["no_face"] >= 1


def test_cuda_without_a_gpu_is_a_device_error(config):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceError):
        dp.DevicePath(config.replace(device="cuda"))


def test_device_path_aligns_mobilefacenet_on_onet_points(photos, tmp_path):
    """The default embedder is aligned on MTCNN's own points on the device too (no predictor run),
    with the ArcFace template's fit, and agrees with the CPU path."""
    from facegate.bulk.device import DevicePath
    from facegate.pipeline import Pipeline

    cfg = Config(detector="mtcnn", embedder="mobilefacenet", runtime="torch", threads=2, home=tmp_path)
    dev = DevicePath(cfg).faces_batch(photos)
    cpu = Pipeline(cfg).faces_batch(photos)
    for d, c in zip(dev, cpu):
        assert len(d) == len(c) and all(f.scheme == "mtcnn5" for f in d)
        for fd, fc in zip(sorted(d, key=lambda f: f.box[0]), sorted(c, key=lambda f: f.box[0])):
            assert float(fd.embedding @ fc.embedding) > 0.99
