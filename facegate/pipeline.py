"""``Pipeline``: the one data path every front end shares.

image -> Detector.detect -> [Face] -> align.norm_crop(embedder template) -> chips
-> Embedder.embed (batched) -> Face.embedding -> decide (1:1 here; 1:N in the gallery) / track.
Liveness (is the face in front of the camera a live person?) reuses the detector's faces:
``Pipeline.liveness`` (every face of one image) and ``Pipeline.liveness_burst`` (one face over
consecutive frames, the gate's own burst check). Models load lazily on first use and once per
Pipeline; nothing loads at import.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from facegate.align import norm_crops, points_for
from facegate.config import Config
from facegate.decide.scores import cosine
from facegate.decide.site import store_path, store_signature
from facegate.decide.tables import StackTables, in_force
from facegate.decide.verification import decide, decision_threshold
from facegate.errors import MultipleFacesError, NoFaceError, UncalibratedError, UsageError
from facegate.image import ImageInput, load_image
from facegate.types import Face, FaceChoice, OperatingPoint, Verdict

if TYPE_CHECKING:
    from facegate.liveness import Liveness, LivenessDetector, SamePersonRule

log = logging.getLogger(__name__)

Pick = Literal["single", "largest", "center"]
PICKS: tuple[str, ...] = ("largest", "single", "center")
# The one face-choice rule of every front end (Python API, CLI, REST, gate, enrolment, the
# CompreFace-compatible API): the largest face (see pick_face for near-ties), said in the answer
# (FaceChoice). "single" demands exactly one face (MultipleFacesError: exit 5, HTTP 422).
DEFAULT_PICK: Pick = "largest"


SURE_SHARE = 0.8  # ``largest`` chooses among faces scoring at least this share of the best score


def pick_face(faces: list[Face], image_shape: tuple[int, ...], pick: Pick, name: str = "image") -> Face:
    """Choose the face a one-face operation should use.

    ``single`` refuses zero or several faces (``--pick single``, ``pick=single``; the default of every
    front end is ``largest``, :data:`DEFAULT_PICK`, and :func:`choose_face` says which face it was).
    ``largest`` takes the biggest box among the faces the detector is nearly as sure of as its
    best one (score at least ``SURE_SHARE`` x the top score): the person nearest the camera,
    but not a hand holding a print or a patch of background the detector half-believes is a
    face, which can be larger than the face itself (measured on nuaa_dev: such boxes score
    0.2-0.6 where the face scores above 0.9). Ties (equal areas) go to the higher score,
    then to the face nearer the image centre. Every front end that takes "the" face of a
    frame (the gate, ``--pick largest``, the liveness evaluation) uses this one rule.
    ``center`` takes the face nearest the image centre (the LFW convention: its photos are
    centred on the labelled person).
    """
    if not faces:
        raise NoFaceError(f"{name}: no face found")
    if len(faces) == 1:
        return faces[0]
    if pick == "single":
        raise MultipleFacesError(
            f"{name}: {len(faces)} faces found where one was needed; crop the photo or choose one face"
        )
    cy, cx = image_shape[0] / 2, image_shape[1] / 2

    def off_centre(f: Face) -> float:
        return (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2

    if pick == "largest":
        top = max(f.score for f in faces)
        sure = [f for f in faces if f.score >= SURE_SHARE * top]
        return max(sure, key=lambda f: (f.width * f.height, f.score, -off_centre(f)))
    if pick == "center":
        return min(faces, key=off_centre)
    raise UsageError(f"unknown pick rule {pick!r}; use single, largest or center")


def choose_face(faces: list[Face], image_shape: tuple[int, ...], pick: str = DEFAULT_PICK,
                name: str = "image") -> FaceChoice:
    """:func:`pick_face` with what the answer must say: the face's position among ``faces`` and how
    many there were. Every front end chooses through here, so they cannot choose differently."""
    if pick not in PICKS:
        raise UsageError(f"unknown pick rule {pick!r}; use {', '.join(PICKS)}")
    face = pick_face(faces, image_shape, pick, name)  # type: ignore[arg-type]
    index = next(i for i, f in enumerate(faces) if f is face)
    return FaceChoice(face=face, index=index, found=len(faces), pick=pick)


class _InForce:
    """A pipeline's view of its tables in force (:meth:`Pipeline.tables`), read on every access so a
    newly adopted site table applies; an instance attribute of the same name (a test's or a
    synthetic pipeline's fixed table) takes precedence, as it did over the cached property this was."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        tables = obj.tables()
        if self.name == "table_label":
            return tables.label
        return list(getattr(tables, self.name))


class Pipeline:
    """Detect, align and embed faces with the models named in one ``Config``."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()

    # -- lazily built stages -------------------------------------------------------------
    @cached_property
    def detector(self):  # -> Detector
        from facegate.detect import get_detector

        return get_detector(self.config)

    @cached_property
    def embedder(self):  # -> Embedder
        from facegate.embed import get_embedder

        return get_embedder(self.config)

    def tables(self) -> StackTables:
        """The tables in force for this stack (:func:`facegate.decide.tables.in_force`): read once, and
        again when the site-table store changes, so a site table adopted (or reverted) while this
        pipeline lives, by another process too, decides from its next decision on."""
        sig = store_signature(store_path(self.config))
        cached = self.__dict__.get("_tables")
        if cached is None or cached[0] != sig:
            cached = (sig, in_force(self.config))
            self.__dict__["_tables"] = cached
        return cached[1]

    operating_points = _InForce()  # the per-comparison points in force (:mod:`facegate.decide.tables`)
    template_points = _InForce()  # the k-photo template points in force (measured by :mod:`facegate.evaluate.templates`)
    table_label = _InForce()  # which table decides, in words (:attr:`facegate.decide.tables.StackTables.label`)

    @cached_property
    def plain_operating_points(self) -> list[OperatingPoint]:
        """The operating points of this stack without the mirror average (``flip`` off): the
        gate compares a burst's frames by such plain embeddings (:meth:`frame_rule`)."""
        return list(in_force(self.config.replace(flip=False)).operating_points)

    # -- single images -------------------------------------------------------------------
    def load(self, src: ImageInput) -> np.ndarray:
        return load_image(src, self.config)

    def detect(self, src: ImageInput) -> list[Face]:
        """Faces (box, score, landmarks) without embeddings."""
        return self.detector.detect(self.load(src))

    def chips(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Aligned chips for the embedder: (N, S, S, 3) uint8, from each face's points in the
        scheme of the embedder's template (derived from another scheme only where the detector
        gave none; such faces are marked ``extra["derived_landmarks"]``)."""
        tmpl = self.embedder.template
        pts = []
        for f in faces:
            p, derived = points_for(f, tmpl.scheme)
            if derived:
                f.extra["derived_landmarks"] = True
            pts.append(p)
        return norm_crops(image, pts, tmpl)

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Fill in ``Face.embedding`` for faces already detected in ``image``."""
        if faces:
            emb = self.embedder.embed(self.chips(image, faces))
            for face, e in zip(faces, emb):
                face.embedding = e
        return faces

    def faces(self, src: ImageInput) -> list[Face]:
        """Every face in the image, detected, aligned and embedded."""
        image = self.load(src)
        return self.embed_faces(image, self.detector.detect(image))

    def choose(self, src: ImageInput, pick: Pick = DEFAULT_PICK, name: str | None = None) -> FaceChoice:
        """The face of an image a one-face operation uses (:func:`choose_face`), embedded, with how
        many faces the image held."""
        image = self.load(src)
        label = name or (str(src) if isinstance(src, (str,)) else "image")
        choice = choose_face(self.detector.detect(image), image.shape, pick, label)
        self.embed_faces(image, [choice.face])
        return choice

    def face(self, src: ImageInput, pick: Pick = DEFAULT_PICK, name: str | None = None) -> Face:
        """The one face of an image (see :func:`pick_face`), embedded."""
        return self.choose(src, pick, name).face

    # -- batches ---------------------------------------------------------------------------
    def faces_batch(self, images: Iterable[np.ndarray]) -> list[list[Face]]:
        """Faces of several decoded images; detection batched by the detector, every chip of
        every image embedded in shared batches of ``config.batch_size``."""
        images = list(images)
        detections = self.detector.detect_batch(images)
        chips = [self.chips(img, faces) for img, faces in zip(images, detections)]
        flat = [c for c in chips if len(c)]
        if flat:
            emb = self.embedder.embed(np.concatenate(flat))
            i = 0
            for faces in detections:
                for face in faces:
                    face.embedding = emb[i]
                    i += 1
        return detections

    # -- decisions -------------------------------------------------------------------------
    def threshold(self) -> tuple[float, float | None]:
        """(cosine threshold, FAR it stands for) from the config and the calibrated table."""
        return decision_threshold(self.config, self.operating_points)

    def compare(self, a: Face, b: Face) -> Verdict:
        if a.embedding is None or b.embedding is None:
            raise UsageError("both faces need embeddings; use Pipeline.face() or faces() first")
        thr, far = self.threshold()
        return decide(cosine(a.embedding, b.embedding), thr, far, table=self.table_label)

    def verify(self, a: ImageInput, b: ImageInput, pick: Pick = DEFAULT_PICK) -> Verdict:
        """Are the faces in ``a`` and ``b`` the same person? At the configured FAR or threshold.
        The verdict says which face of each photo was used (``verdict.faces``)."""
        self.threshold()  # fail on a bad FAR before spending time on models
        ca = self.choose(a, pick, name=str(a) if isinstance(a, str) else "first image")
        cb = self.choose(b, pick, name=str(b) if isinstance(b, str) else "second image")
        return replace(self.compare(ca.face, cb.face), faces=(ca, cb))

    # -- liveness --------------------------------------------------------------------------
    @property
    def liveness_detector(self) -> LivenessDetector:
        """The liveness model in force for this config (:mod:`facegate.liveness.registry`): the
        shipped head, or the site's adopted one, picked up again when an adoption changes it.
        Raises :class:`~facegate.errors.ModelError` when none may be used (the permissive
        licence policy and no site head)."""
        chosen = self.__dict__.get("_liveness")
        if chosen is not None:
            return chosen
        from facegate.liveness.registry import in_force_detector

        return in_force_detector(self.config)

    @liveness_detector.setter
    def liveness_detector(self, detector: LivenessDetector) -> None:
        """Use this liveness model instead of the one in force (e.g. ``load_liveness(path)``)."""
        self.__dict__["_liveness"] = detector

    def liveness(self, src: ImageInput) -> list[Liveness]:
        """Still liveness of every face in one image, in the detector's order (each verdict
        carries the box it judged): live, score, the threshold applied and the APCER/BPCER
        measured at it. An empty list when there is no face."""
        image = self.load(src)
        faces = self.detector.detect(image)
        if not faces:
            return []
        det = self.liveness_detector
        out = []
        for f in faces:
            v = det.check_still(image, f)
            out.append(_with_box(v, f))
        return out

    def frame_choices(
        self, images: Sequence[np.ndarray], pick: Pick = DEFAULT_PICK
    ) -> tuple[list[FaceChoice | None], int | None]:
        """For each frame of a burst, the face a gate judges (:func:`choose_face`: the one face-choice
        rule, ``largest`` by default; ``single`` refuses a frame with several faces) with how many
        faces the frame held, or None for a frame without a face; and the frame to identify from
        (the one whose face the detector is surest of; the earliest on a tie), None when no frame
        has a face."""
        choices: list[FaceChoice | None] = []
        for i, img in enumerate(images):
            found = self.detector.detect(img)
            label = "image" if len(images) == 1 else f"frame {i + 1} of {len(images)}"
            choices.append(choose_face(found, img.shape, pick, label) if found else None)
        scored = [(c.face.score, -i) for i, c in enumerate(choices) if c is not None]
        probe = -max(scored)[1] if scored else None
        return choices, probe

    def frame_subjects(self, images: Sequence[np.ndarray]) -> tuple[list[Face | None], list[int], int | None]:
        """:meth:`frame_choices` as (the face of each frame or None, how many faces each frame held,
        the frame to identify from)."""
        choices, probe = self.frame_choices(images)
        return ([c.face if c is not None else None for c in choices], [c.found if c is not None else 0 for c in choices],
                probe)

    def frame_rule(self) -> SamePersonRule:
        """The 1:1 rule a burst's frames are held to against the face the gate identifies (its
        "same person in every frame" check), at the configured FAR.

        Plain embeddings (each face's own, without the mirror average: half the forward passes;
        the identified face's comes free with its mirrored one, :meth:`embed_frames`) at the
        threshold the operating-point table of the stack without ``flip`` gives for the
        configured FAR. Where that table has no such point (an explicit ``threshold``, a stack
        never calibrated without ``flip``), the configured embeddings at the configured rule, as
        1:1 verification decides. The rule says which (``mirrored``) and the gate's answer shows it."""
        from facegate.liveness import SamePersonRule

        threshold, far = self.threshold()  # the configured stack must be calibrated (or given a threshold)
        if self.config.flip and self.config.threshold is None:
            try:
                plain, plain_far = decision_threshold(self.config.replace(flip=False), self.plain_operating_points)
            except UncalibratedError:
                pass
            else:
                return SamePersonRule(plain, plain_far, mirrored=False)
        return SamePersonRule(threshold, far, mirrored=self.config.flip)

    def embed_frames(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None], indices: Sequence[int]
    ) -> dict[int, np.ndarray]:
        """Fill in the embeddings of ``faces[i]`` (the face of frame ``i``) for ``indices``, in
        one embedder call, and return their plain embeddings (no mirror average, from the same
        forward passes: what :meth:`frame_embeddings` compares). Faces already embedded are left
        as they are and are not in the answer."""
        todo = [i for i in indices if faces[i] is not None and faces[i].embedding is None]  # type: ignore[union-attr]
        if not todo:
            return {}
        chips = np.concatenate([self.chips(images[i], [faces[i]]) for i in todo])  # type: ignore[list-item]
        emb, plain = self.embedder.embed_and_plain(chips)
        for i, e in zip(todo, emb):
            faces[i].embedding = e  # type: ignore[union-attr]
        return dict(zip(todo, plain))

    def frame_embeddings(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None], indices: Sequence[int],
        rule: SamePersonRule, known: Mapping[int, np.ndarray] | None = None,
    ) -> dict[int, np.ndarray]:
        """The embeddings ``rule`` compares (:meth:`frame_rule`) of ``faces[i]`` for ``indices``
        (frames with a face): plain ones, those in ``known`` (:meth:`embed_frames`'s answer)
        reused and the rest in one embedder call; or, for a mirrored rule, ``Face.embedding``
        (filled in where missing)."""
        idx = [i for i in indices if faces[i] is not None]
        if rule.mirrored or not self.config.flip:
            self.embed_frames(images, faces, idx)
            return {i: faces[i].embedding for i in idx}  # type: ignore[union-attr,misc]
        out = {i: known[i] for i in idx if known and i in known}
        todo = [i for i in idx if i not in out]
        if todo:
            chips = np.concatenate([self.chips(images[i], [faces[i]]) for i in todo])  # type: ignore[list-item]
            out.update(zip(todo, self.embedder.embed_plain(chips)))
        return out

    def liveness_burst(self, frames: Sequence[ImageInput]) -> Liveness:
        """Liveness of one face over consecutive frames (at most ``MAX_BURST_FRAMES``, taken
        within about 2 s), with the gate's own checks (:func:`facegate.liveness.check_presentation`):
        the face judged in each frame is :func:`pick_face`'s ``largest``; frames without a face
        are counted, not fatal; a face that jumps between frames is refused (``face_jumped``),
        and so are frames showing different people at the configured FAR (``different_people``,
        score NaN); otherwise the burst cues decide. Raises :class:`NoFaceError` when no frame has
        a face and :class:`~facegate.errors.ModelError` when no liveness model may be used."""
        from facegate.errors import ModelError
        from facegate.liveness import MAX_BURST_FRAMES, BurstTooLongError, Liveness, check_presentation
        from facegate.liveness.gate import LIVENESS_UNAVAILABLE

        frames = list(frames)
        if len(frames) > MAX_BURST_FRAMES:
            raise BurstTooLongError(f"burst of {len(frames)} frames; at most {MAX_BURST_FRAMES} are checked")
        if not frames:
            raise UsageError("liveness_burst: give at least one frame")
        images = [self.load(f) for f in frames]
        faces, _, probe = self.frame_subjects(images)
        if probe is None:
            raise NoFaceError(f"burst of {len(images)} frames: no face in any frame")
        det = self.liveness_detector  # raises ModelError when none may be used
        check = check_presentation(
            "burst", images, faces, probe, lambda: det, partial(self.frame_embeddings, images, faces), self.frame_rule()
        )
        if check.reason == LIVENESS_UNAVAILABLE:  # pragma: no cover - the detector was loaded above
            raise ModelError(check.message or "no liveness model may be used")
        if check.liveness is not None:
            return _with_box(check.liveness, faces[probe])
        head = det.model.head("burst")
        op = head.operating_point
        return Liveness(
            live=False, score=math.nan, threshold=head.threshold, mode="burst", apcer=op.apcer, bpcer=op.bpcer,
            measured_on=op.measured_on, model=det.name, reason=check.reason,
            frames=sum(f is not None for f in faces), frames_without_face=sum(f is None for f in faces),
            box=_box(faces[probe]),
        )


def _box(face: Face | None) -> tuple[float, float, float, float] | None:
    if face is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in face.box)
    return (x1, y1, x2, y2)


def _with_box(verdict: Liveness, face: Face | None) -> Liveness:
    return replace(verdict, box=_box(face))
