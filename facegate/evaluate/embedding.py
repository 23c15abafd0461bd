"""Embed a list of image files, one face per image, with a stated no-face policy and a cache.

Evaluation and calibration both need "the embedding of the person this photo is
labelled with". What happens when the detector finds nothing matters to the
result, so it is explicit: ``fallback`` lists what to try next, in order, and
every image's outcome is recorded and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.config import Config
from facegate.errors import FacegateError
from facegate.files import create_private
from facegate.pipeline import Pipeline, pick_face
from facegate.types import Face

log = logging.getLogger(__name__)

# Bump when anything that changes embeddings for the same config changes (alignment, preprocessing).
# 3: landmark schemes; 4: whole-frame and rotated passes; 5: O-Net points averaged over two views;
# 6: small faces from weak candidates, rolled faces refined on turned crops, pruned tile plan;
# 7: the padded view packed into the whole view's window on wide and tall images
PIPELINE_VERSION = "7"

# Outcomes recorded per image.
FOUND = "found"  # exactly one face
PICKED = "picked"  # several faces; the pick rule chose one
FALLBACK_DETECTOR = "fallback_detector"  # primary found none; the fallback detector did
FALLBACK_CENTRE = "fallback_centre"  # no detector found one; landmarks fitted on the centre box
FAILED = "failed"  # unreadable, or no face and no fallback left: no embedding


@dataclass
class EmbeddedSet:
    paths: list[str]
    embeddings: np.ndarray  # (N, D), zero rows where status is FAILED
    status: list[str]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.status:
            out[s] = out.get(s, 0) + 1
        return out


def _signature(config: Config, pick: str) -> str:
    """Cache key of everything that changes an image's embedding. The no-face fallback is
    not part of it: each cached entry records how it was obtained, and entries from a
    fallback this run does not allow are recomputed."""
    from facegate.models.detectors import box_refinement, min_face
    from facegate.models.registry import get_spec

    spec = get_spec(config.embedder, config)
    key = {
        "v": PIPELINE_VERSION,
        "detector": config.detector,
        "embedder": spec.name,
        "sha256": spec.sha256,
        "flip": config.flip,
        "min_face": min_face(config),
        "det_thr": config.detection_threshold,
        "refine": box_refinement(config),
        "pick": pick,
    }
    from facegate.align import named_template

    tmpl = named_template(spec.template or "arcface", spec.input_size or 112)
    if tmpl.fit != "dlib":  # only when not dlib's, so earlier caches keep their keys
        key["fit"] = tmpl.fit
    if config.fp16:  # only when set, so fp32 caches keep their keys
        key["fp16"] = True
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class _Cache:
    """Embeddings keyed by file path (+ size and mtime), one .npz per pipeline signature."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, tuple[np.ndarray, str]] = {}
        if path is not None and path.exists():
            try:
                z = np.load(path, allow_pickle=False)
                keys = [str(k) for k in z["keys"]]
                for k, e, s in zip(keys, z["emb"], z["status"]):
                    self.data[k] = (e, str(s))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable embedding cache %s: %s", path, exc)

    @staticmethod
    def key(p: Path) -> str:
        st = p.stat()
        return f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}"

    def save(self) -> None:
        if self.path is None or not self.data:
            return
        keys = list(self.data)
        tmp = self.path.with_suffix(".tmp.npz")
        create_private(tmp)  # 0600 in a 0700 folder: features of the photos; np.savez keeps the mode
        np.savez(
            tmp,
            keys=np.array(keys),
            emb=np.stack([self.data[k][0] for k in keys]),
            status=np.array([self.data[k][1] for k in keys]),
        )
        tmp.replace(self.path)


def centre_box(faces_seen: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """The box to use when no detector finds a face: the median size of the boxes found
    so far in this run, centred in the image (LFW photos are centred on their subject)."""
    h, w = shape[:2]
    if faces_seen:
        sizes = np.array([[b[2] - b[0], b[3] - b[1]] for b in faces_seen[-2000:]])
        bw, bh = np.median(sizes, axis=0)
    else:
        bw = bh = 0.45 * min(h, w)
    return np.array([w / 2 - bw / 2, h / 2 - bh / 2, w / 2 + bw / 2, h / 2 + bh / 2], dtype=np.float32)


def embed_files(
    pipeline: Pipeline,
    paths: list[Path],
    pick: str = "center",
    fallback: tuple[str, ...] = ("centre",),
    cache: bool = True,
    chunk: int = 32,
    progress: bool = True,
    desc: str = "embedding",
) -> EmbeddedSet:
    """One embedding per image file (the face chosen by ``pick``).

    ``fallback``: what to try, in order, for images where the configured detector finds
    no face: another detector's name (e.g. ``"mtcnn"``) and/or ``"centre"`` (fit the
    landmarks on a centred box). Images still without a face get status FAILED.
    """
    config = pipeline.config
    sig = _signature(config, pick)
    store = _Cache(config.cache_dir / "embeddings" / f"{sig}.npz" if cache else None)
    dim = pipeline.embedder.dim
    emb = np.zeros((len(paths), dim), dtype=np.float32)
    status = [""] * len(paths)
    todo = []
    keys = []
    for i, p in enumerate(paths):
        try:
            k = _Cache.key(p)
        except OSError:
            k = f"{p}|missing"
        keys.append(k)
        hit = store.data.get(k)
        if hit is not None and _allowed(hit[1], fallback):
            emb[i], status[i] = hit
        else:
            todo.append(i)
    if todo:
        log.info("%d of %d images cached; embedding %d", len(paths) - len(todo), len(paths), len(todo))
    fallback_pipes = [Pipeline(config.replace(detector=f)) for f in fallback if f != "centre"]
    boxes_seen: list[np.ndarray] = []
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress or not todo, dynamic_ncols=True)
    try:
        for start in range(0, len(todo), chunk):
            idx = todo[start : start + chunk]
            images: dict[int, np.ndarray] = {}
            for i in idx:
                try:
                    images[i] = pipeline.load(paths[i])
                except FacegateError as exc:
                    log.warning("%s", exc)
                    status[i] = FAILED
            order = list(images)
            detections = pipeline.detector.detect_batch([images[i] for i in order])
            chosen: dict[int, Face] = {}
            for i, faces in zip(order, detections):
                if faces:
                    chosen[i] = pick_face(faces, images[i].shape, pick)  # type: ignore[arg-type]
                    status[i] = FOUND if len(faces) == 1 else PICKED
                    boxes_seen.append(chosen[i].box)
            for i in order:
                if i in chosen:
                    continue
                for fp in fallback_pipes:
                    faces = fp.detector.detect(images[i])
                    if faces:
                        chosen[i] = pick_face(faces, images[i].shape, pick)  # type: ignore[arg-type]
                        status[i] = FALLBACK_DETECTOR
                        break
                if i not in chosen and "centre" in fallback:
                    chosen[i] = centre_face(pipeline, images[i], centre_box(boxes_seen, images[i].shape))
                    status[i] = FALLBACK_CENTRE
                if i not in chosen:
                    status[i] = FAILED
            if chosen:
                ids = list(chosen)
                chips = np.concatenate([pipeline.chips(images[i], [chosen[i]]) for i in ids])
                vecs = pipeline.embedder.embed(chips)
                for i, v in zip(ids, vecs):
                    emb[i] = v
            for i in idx:
                store.data[keys[i]] = (emb[i], status[i])
            bar.update(len(idx))
            if (start // chunk) % 50 == 49:
                store.save()  # resume point for long runs
    finally:
        bar.close()
        store.save()
    return EmbeddedSet(paths=[str(p) for p in paths], embeddings=emb, status=status)


def centre_face(pipeline: Pipeline, image: np.ndarray, box: np.ndarray) -> Face:
    """A face on a given box where no detector found one, with native points of the embedder's
    scheme: O-Net's five (run on the box) for an mtcnn5 template, dlib's predictor for dlib5
    (and where O-Net's result wanders off the box)."""
    from facegate.align import MTCNN5
    from facegate.detect.landmarks import DlibLandmarker

    if pipeline.embedder.template.scheme == MTCNN5:
        from facegate.detect.refine import OnetRefiner

        _boxes, _prob, ok, points = _landmarker(pipeline, OnetRefiner).refine_points(image, box[None])
        if ok[0]:
            return Face(box=box, landmarks=points[0], scheme=MTCNN5, score=0.0, detector="centre")
    lm = _landmarker(pipeline, DlibLandmarker).fit(image, box[None])[0]
    return Face(box=box, landmarks=lm, score=0.0, detector="centre")


def _allowed(status: str, fallback: tuple[str, ...]) -> bool:
    """Whether a cached outcome is what this run would produce too."""
    if status == FALLBACK_CENTRE:
        return "centre" in fallback
    if status == FALLBACK_DETECTOR:
        return any(f != "centre" for f in fallback)
    if status == FAILED:
        return not fallback  # with a fallback allowed, try again
    return True


_LANDMARKERS: dict[tuple[int, str], object] = {}


def _landmarker(pipeline: Pipeline, cls):
    key = (id(pipeline), cls.__name__)
    lm = _LANDMARKERS.get(key)
    if lm is None:
        lm = _LANDMARKERS[key] = cls(pipeline.config)
    return lm
