"""Liveness cues: numbers measured on a face and the rest of the same frame(s).

Every cue is *relative*: it compares the face with something in the same image (or the
same burst), so the camera's exposure, white balance, sharpness and the room's light
cancel out. Absolute cues (how sharp the face is, how bright) were measured not to carry
from one NUAA session to the other, nor through a slightly softer camera or a crisper
printer (issue 21), so none is used here.

Still cues (one frame):

* ``red_rel``: how much redder the skin under the eyes (cheeks, nose, mouth: no brows,
  no glasses) is than the rest of the frame, in r-g chromaticity ``(R - G) / (R + G + B)``.
  Blood under living skin makes it redder than the average of an ordinary scene under
  the same light and white balance; a printed face's reds go through ink and paper and
  come back paler. Of the colour statistics measured it carried best across sessions.
* ``chroma_rel``, ``sat_rel``: colour of the face centre against the rest of the frame
  (log ratio of mean Lab chroma / HSV saturation). Skin seen directly is more colourful
  than the rest of an ordinary scene; a print (ink gamut, paper white, reflections) and
  its white backdrop are paler than the room around the attacker.
* ``edge_left``, ``edge_right``, ``edge_top``, ``edge_bottom``: how straight and long
  the strongest edge beside the face is, in the face's own frame (rolled with the eyes,
  scaled to its size). The coherence of a line ``|sum g| / sum |g|`` of the gradient
  across it is near 1 for a long straight step (a sheet's border, a screen's bezel) and
  near 0 for texture, hair or a head's curved outline; being a ratio, contrast and blur
  barely change it.

Burst cues (two consecutive frames of one face, averaged over a burst):

* ``follow_ring``, ``follow_side``: the log ratio of two residuals around the face,
  ``log(e_still / e_follow)``: the next frame against this one if the surroundings had
  *stayed still* and if they had moved *with the face* (the face's own motion, tracked on
  points inside it). A head moves in front of a room that stays put (negative); a printed
  face moves together with the sheet, its printed background, its border and the fingers
  holding it (towards zero or positive). Without motion both residuals are equal and the
  cue says nothing (0).
* ``follow_near``, ``follow_vote``: among the pixels around the face where the two
  hypotheses differ clearly, the share better explained by the face's motion, close
  around the face (0.6 to 1.3 face sizes from its centre: a print's own background and
  border, or a head's outline and the room just behind it) and in the wider ring (0.75
  to 2). A share, not a size: it does not grow with how far the face moved.

The face's motion is measured by pyramidal Lucas-Kanade tracking of corner points inside
the face, started from the similarity of its landmarks, and a RANSAC similarity fit, so
landmark jitter (a few percent of the face's size between frames) does not pass for motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from facegate.align import eye_centres, similarity_transform
from facegate.types import Face

STILL_CUES = ("red_rel", "chroma_rel", "sat_rel", "edge_left", "edge_right", "edge_top", "edge_bottom")
COLOUR_CUES = STILL_CUES[:3]
EDGE_CUES = STILL_CUES[3:]
PAIR_CUES = ("follow_near", "follow_vote", "follow_ring", "follow_side")
CUES_VERSION = 4  # bump when a cue's definition changes: heads record the version they were fitted with

# The face-aligned canvas: face-size units u (across) and v (down), the box spans about
# [-0.5, 0.5]; the canvas covers what a held sheet or a head and its surroundings occupy.
CANVAS_PX = 32  # canvas pixels per face size
_X0, _X1, _Y0, _Y1 = -3.0, 3.0, -2.5, 3.5
_COLOUR_WIDTH = 160  # the frame is compared in colour at this width (cheap, and blur-blind)
_TRACK_PX = 64.0  # faces are tracked at about this size
_SLOPES = (-0.2, -0.1, 0.0, 0.1, 0.2)  # edge directions searched, as shear of the canvas


@dataclass(frozen=True)
class FaceFrame:
    """Where a face is: centre (pixels), size (geometric mean of the box sides), roll (radians,
    from the eye line). The cues' regions are defined in these units."""

    cx: float
    cy: float
    size: float
    roll: float

    @classmethod
    def of(cls, face: Face) -> FaceFrame:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        left, right = eye_centres(face.landmarks, face.scheme)
        roll = math.atan2(float(right[1] - left[1]), float(right[0] - left[0]))
        size = math.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0))
        return cls((x1 + x2) / 2, (y1 + y2) / 2, size, roll)

    def to_canvas(self, px: float = CANVAS_PX) -> np.ndarray:
        """3x3 map from image pixels to the canvas (``px`` pixels per face size)."""
        c, s = math.cos(-self.roll), math.sin(-self.roll)
        k = px / self.size
        rot = np.array([[c, -s], [s, c]]) * k
        t = -rot @ np.array([self.cx, self.cy]) - np.array([_X0, _Y0]) * px
        m = np.eye(3)
        m[:2, :2], m[:2, 2] = rot, t
        return m

    def uv(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image points (N, 2) in face units (u across, v down)."""
        c, s = math.cos(-self.roll), math.sin(-self.roll)
        d = (np.asarray(points, dtype=np.float64) - (self.cx, self.cy)) / self.size
        return c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]


def _canvas_shape(px: int = CANVAS_PX) -> tuple[int, int]:
    return int(round((_Y1 - _Y0) * px)), int(round((_X1 - _X0) * px))


def _col(u: float, px: int = CANVAS_PX) -> int:
    return int(round((u - _X0) * px))


def _row(v: float, px: int = CANVAS_PX) -> int:
    return int(round((v - _Y0) * px))


class Frame:
    """One image prepared once for all cues: grey and colour at small sizes, the face's canvas.

    Burst cues compare consecutive ``Frame`` objects; each image is shrunk and converted only
    once however many cues and pairs use it.
    """

    def __init__(self, image: np.ndarray, face: Face) -> None:
        self.shape = image.shape[:2]
        self.face = face
        self.geom = FaceFrame.of(face)
        h, w = self.shape
        self._image = image  # kept until the grey image is made (only edge and burst cues need it)
        # Grey at tracking scale: the face about _TRACK_PX wide (never enlarged), the scale
        # rounded to a power of 2^(1/4) so that consecutive frames of one face usually share
        # it (then no frame is resampled a second time to be tracked against the other).
        self.k = min(1.0, 2.0 ** (math.floor(4 * math.log2(_TRACK_PX / self.geom.size)) / 4))
        # Colour at a fixed small width.
        kc = min(1.0, _COLOUR_WIDTH / w)
        self.kc = kc
        self.colour = cv2.resize(image, (max(1, round(w * kc)), max(1, round(h * kc))), interpolation=cv2.INTER_AREA)

    @cached_property
    def grey(self) -> np.ndarray:
        """The frame in grey at tracking scale."""
        grey = cv2.cvtColor(self._image, cv2.COLOR_RGB2GRAY)
        h, w = self.shape
        if self.k < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * self.k)), max(1, round(h * self.k))), interpolation=cv2.INTER_AREA)
        del self._image
        return grey

    def canvas(self, to_image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The grey face canvas (float32) and its validity mask. ``to_image`` (3x3) maps this
        frame's canvas points to points of the image being sampled (default: this frame)."""
        m = self.geom.to_canvas()  # image -> canvas
        scale = np.diag([self.k, self.k, 1.0])  # image -> grey
        if to_image is None:
            to_image = np.linalg.inv(m)
        warp = scale @ to_image  # canvas -> grey pixels
        rows, cols = _canvas_shape()
        fwd = np.linalg.inv(warp)[:2]
        return _warp(self.grey, fwd, (cols, rows))


def _warp(grey: np.ndarray, fwd: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    out = cv2.warpAffine(grey, fwd, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    valid = cv2.warpAffine(np.full(grey.shape, 255, np.uint8), fwd, size, flags=cv2.INTER_NEAREST, borderValue=0)
    return out.astype(np.float32), valid > 0


# -- still cues -------------------------------------------------------------------------------


def _region(frame: Frame, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """Mask of the small colour image covering the face-frame rectangle [u0, u1] x [v0, v1]."""
    g = frame.geom
    c, s = math.cos(g.roll), math.sin(g.roll)
    corners = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]]) * g.size
    pts = np.stack([g.cx + c * corners[:, 0] - s * corners[:, 1], g.cy + s * corners[:, 0] + c * corners[:, 1]], axis=1)
    mask = np.zeros(frame.colour.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(pts * frame.kc * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def colour_cues(frame: Frame, names: tuple[str, ...] = COLOUR_CUES) -> dict[str, float]:
    """``red_rel`` (skin under the eyes), ``chroma_rel`` and ``sat_rel`` (face centre), each
    against everything outside the face box; only the cues in ``names`` are computed."""
    img = frame.colour
    skin = _region(frame, -0.35, 0.35, -0.05, 0.3)  # under the eyes: cheeks, nose, mouth (no brows, no glasses)
    core = _region(frame, -0.3, 0.3, -0.3, 0.3)
    rest = ~_region(frame, -0.5, 0.5, -0.5, 0.5)
    out = {}
    if skin.sum() < 4 or core.sum() < 4 or rest.sum() < 16:
        return {n: math.nan for n in COLOUR_CUES if n in names}
    if "red_rel" in names:
        rgb = img.astype(np.float32) + 1.0
        red = (rgb[..., 0] - rgb[..., 1]) / rgb.sum(axis=-1)  # r - g chromaticity
        out["red_rel"] = float(red[skin].mean() - red[rest].mean())
    if "chroma_rel" in names:
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
        chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
        out["chroma_rel"] = float(math.log((chroma[core].mean() + 1.0) / (chroma[rest].mean() + 1.0)))
    if "sat_rel" in names:
        sat = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
        out["sat_rel"] = float(math.log((sat[core].mean() + 1.0) / (sat[rest].mean() + 1.0)))
    return out


def _coherence(g: np.ndarray, mag: np.ndarray, valid: np.ndarray, rows: slice, cols: slice) -> float:
    """Max over the columns in ``cols`` of |sum g| / (sum |grad| + floor) over ``rows``;
    columns less than 80% inside the image are skipped. Sheared copies give other directions."""
    g, mag, valid = g[rows, cols], mag[rows, cols], valid[rows, cols]
    if g.size == 0:
        return math.nan
    n = g.shape[0]
    inside = valid.mean(axis=0) >= 0.8
    if not inside.any():
        return math.nan
    floor = 0.05 * float(mag[valid].mean() if valid.any() else 0.0) + 1e-3
    coh = np.abs(g.sum(axis=0)) / (mag.sum(axis=0) + floor * n)
    return float(coh[inside].max())


def edge_cues(frame: Frame) -> dict[str, float]:
    """Straight edges beside the face: ``edge_*`` in [0, 1] per side (NaN where out of frame)."""
    canvas, valid = frame.canvas()
    smooth = cv2.GaussianBlur(canvas, (0, 0), 1.0)
    inner = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    gx[~inner] = 0
    gy[~inner] = 0
    mag = np.hypot(gx, gy)
    rows, cols = canvas.shape
    out = {"edge_left": math.nan, "edge_right": math.nan, "edge_top": math.nan, "edge_bottom": math.nan}

    def best(name: str, value: float) -> None:
        if not math.isnan(value):
            out[name] = value if math.isnan(out[name]) else max(out[name], value)

    stack = np.stack([gx, gy, mag, inner.astype(np.float32)], axis=-1)
    cy0, cx0 = _row(0.0), _col(0.0)
    for slope in _SLOPES:
        # Vertical edges (left/right): shear x by slope * (y - face centre row).
        sh = np.array([[1.0, slope, -slope * cy0], [0.0, 1.0, 0.0]], dtype=np.float64)
        s = cv2.warpAffine(stack, sh, (cols, rows), flags=cv2.INTER_LINEAR, borderValue=0)
        span = slice(_row(-0.9), _row(0.9))
        valid_s = s[..., 3] > 0.5
        best("edge_left", _coherence(s[..., 0], s[..., 2], valid_s, span, slice(_col(-2.4), _col(-0.55))))
        best("edge_right", _coherence(s[..., 0], s[..., 2], valid_s, span, slice(_col(0.55), _col(2.4))))
        # Horizontal edges (top/bottom): shear y by slope * (x - face centre column).
        sh = np.array([[1.0, 0.0, 0.0], [slope, 1.0, -slope * cx0]], dtype=np.float64)
        s = cv2.warpAffine(stack, sh, (cols, rows), flags=cv2.INTER_LINEAR, borderValue=0)
        valid_s = s[..., 3] > 0.5
        span = slice(_col(-0.9), _col(0.9))
        gyt, magt, vt = s[..., 1].T, s[..., 2].T, valid_s.T
        best("edge_top", _coherence(gyt, magt, vt, span, slice(_row(-2.2), _row(-0.6))))
        best("edge_bottom", _coherence(gyt, magt, vt, span, slice(_row(0.7), _row(3.2))))
    return out


def still_cues(frame: Frame, names: tuple[str, ...] = STILL_CUES) -> dict[str, float]:
    """The still cues ``names`` of one prepared frame (NaN where a cue cannot be measured);
    a family of cues is computed only if one of its cues is asked for."""
    out: dict[str, float] = {}
    if any(n in COLOUR_CUES for n in names):
        out.update(colour_cues(frame, names))
    if any(n in EDGE_CUES for n in names):
        out.update(edge_cues(frame))
    return out


# -- burst cues -------------------------------------------------------------------------------


def _homog(m: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    out[:2] = m
    return out


def face_motion(a: Frame, b: Frame) -> tuple[np.ndarray, bool]:
    """The face's motion from frame ``a`` to frame ``b`` as a 3x3 similarity in full-size image
    pixels, and whether it came from tracked points (True) or only from the landmarks (False)."""
    lm = _homog(similarity_transform(a.face.landmarks, b.face.landmarks))  # a's pixels -> b's pixels
    # Track on a's grey grid. b's grey is brought onto it: a frame of another size is taken to
    # be the same camera's view rescaled (``sb`` maps a's pixels to b's).
    ka = a.k
    ga = a.grey
    sb = np.diag([b.shape[1] / a.shape[1], b.shape[0] / a.shape[0], 1.0])
    gb = b.grey
    if gb.shape != ga.shape:
        gb = cv2.resize(gb, (ga.shape[1], ga.shape[0]), interpolation=cv2.INTER_AREA)
    g = a.geom
    centre = (int(round(g.cx * ka)), int(round(g.cy * ka)))
    axes = (max(2, int(0.42 * g.size * ka)), max(2, int(0.5 * g.size * ka)))
    angle = int(round(math.degrees(g.roll)))
    # Corners are searched in the face's bounding rectangle only, with a margin wider than the
    # corner detector's window, so the points are those a whole-image search would find.
    bx, by, bw, bh = cv2.boundingRect(np.asarray(cv2.ellipse2Poly(centre, axes, angle, 0, 360, 5), np.int32))
    x0, y0 = max(bx - 8, 0), max(by - 8, 0)
    x1, y1 = min(bx + bw + 8, ga.shape[1]), min(by + bh + 8, ga.shape[0])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return lm, False
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.ellipse(mask, (centre[0] - x0, centre[1] - y0), axes, angle, 0, 360, 255, -1)
    pts = cv2.goodFeaturesToTrack(ga[y0:y1, x0:x1], 60, 0.005, 3, mask=mask)
    if pts is None or len(pts) < 8:
        return lm, False
    p0 = (pts.reshape(-1, 2) + np.array([x0, y0], np.float32)).astype(np.float32)
    s = np.diag([ka, ka, 1.0])  # a's pixels -> a's grey grid
    to_grid = s @ np.linalg.inv(sb)  # b's pixels -> the grid b was resampled onto
    guess_m = to_grid @ lm @ np.linalg.inv(s)
    guess = (p0 @ guess_m[:2, :2].T + guess_m[:2, 2]).astype(np.float32)
    flow = cv2.OPTFLOW_USE_INITIAL_FLOW
    p1, st, _ = cv2.calcOpticalFlowPyrLK(ga, gb, p0, guess.copy(), None, None, (15, 15), 3, flags=flow)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gb, ga, p1, p0.copy(), None, None, (15, 15), 3, flags=flow)
    ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back - p0, axis=1) < 0.5)
    if ok.sum() < 8:
        return lm, False
    m, inliers = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if m is None or inliers is None or inliers.sum() < 6:
        return lm, False
    return np.linalg.inv(to_grid) @ _homog(m) @ s, True


@lru_cache(maxsize=4)
def _pair_zones(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canvas zones the pair cues compare (before the validity of the frames' pixels): the
    ring (0.75 to 2 face sizes, Chebyshev), the sides, and the near ring (0.6 to 1.3). Pure
    geometry of the canvas, made once (read-only)."""
    v, u = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u = u / CANVAS_PX + _X0
    v = v / CANVAS_PX + _Y0
    cheb = np.maximum(np.abs(u), np.abs(v))
    ring = (cheb > 0.75) & (cheb < 2.0)
    side = (np.abs(u) > 0.8) & (np.abs(u) < 2.0) & (v > -1.0) & (v < 0.5)
    near = (cheb > 0.6) & (cheb < 1.3)
    for z in (ring, side, near):
        z.flags.writeable = False
    return ring, side, near


def pair_cues(a: Frame, b: Frame, names: tuple[str, ...] = PAIR_CUES) -> dict[str, float]:
    """Does the face's surrounding move with the face (a sheet) or stay put (a head in a room)?
    Only the cues in ``names`` are measured (the others are NaN)."""
    out = dict.fromkeys(PAIR_CUES, math.nan)
    if not any(n in PAIR_CUES for n in names):
        return out
    motion, _tracked = face_motion(a, b)
    to_canvas = a.geom.to_canvas()
    from_canvas = np.linalg.inv(to_canvas)
    # b's frame in a's image coordinates: same pixels if the sizes match, else scaled.
    sb = np.diag([b.shape[1] / a.shape[1], b.shape[0] / a.shape[0], 1.0])
    c0, v0 = a.canvas()
    c_static, v_static = b.canvas(sb @ from_canvas)
    c_follow, v_follow = b.canvas(motion @ from_canvas)
    valid = v0 & v_static & v_follow
    sig = 0.7
    c0 = cv2.GaussianBlur(c0, (0, 0), sig)
    c_static = cv2.GaussianBlur(c_static, (0, 0), sig)
    c_follow = cv2.GaussianBlur(c_follow, (0, 0), sig)
    e_static = np.abs(c0 - c_static)
    e_follow = np.abs(c0 - c_follow)
    ring_zone, side_zone, near_zone = _pair_zones(*c0.shape)
    ring = valid & ring_zone
    for name, zone in (("follow_ring", ring), ("follow_side", valid & side_zone)):
        if name in names and zone.sum() >= 40:
            out[name] = float(math.log((e_static[zone].mean() + 1.0) / (e_follow[zone].mean() + 1.0)))
    for name, zone in (("follow_near", valid & near_zone), ("follow_vote", ring)):
        if name in names and zone.sum() >= 40:
            d = e_static[zone] - e_follow[zone]
            decisive = np.abs(d) > 4.0
            if decisive.sum() >= 10:
                out[name] = float((d[decisive] > 0).mean())
    return out
