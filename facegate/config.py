"""One configuration object for the whole pipeline.

Every stage receives the same frozen ``Config`` instead of a dozen keyword
arguments; this is also the only module that reads environment variables.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path


def _default_home() -> Path:
    env = os.environ.get("FACEGATE_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "facegate"


DEFAULT_EMBEDDER = "mobilefacenet"  # measured best (README: LFW, TAR at low FAR, CFP, speed)
PERMISSIVE_EMBEDDER = "dlib_resnet"  # the best embedder whose weights carry an explicit permissive licence
LICENCE_POLICIES = ("any", "permissive")


def _default_policy() -> str:
    return os.environ.get("FACEGATE_LICENCE_POLICY", "any") or "any"


@dataclass(frozen=True)
class Config:
    """Settings shared by detection, alignment, embedding and decisions.

    ``device`` is explicit: asking for ``"cuda"`` on a machine without a GPU raises
    :class:`facegate.errors.DeviceError` rather than quietly running on the CPU.
    """

    detector: str = "blazeface"  # a name of facegate.models.detectors.DETECTORS
    embedder: str = ""  # "" = the default for the licence policy (DEFAULT_EMBEDDER / PERMISSIVE_EMBEDDER)
    # "permissive": only models whose weights carry an explicit permissive licence (see `facegate models`)
    licence_policy: str = field(default_factory=_default_policy)
    device: str = "cpu"
    runtime: str = "auto"  # built-in embedder's engine: auto (onnxruntime on CPU, torch on CUDA), torch, onnxruntime
    fp16: bool = False  # built-in embedder in half precision; CUDA + torch runtime only (LFW delta in benchmarks/RESULTS.md)
    batch_size: int = 32
    far: float = 1e-3  # default per-comparison operating point for 1:1 verify decisions
    fpir: float = 1e-2  # default 1:N rate (identify, gate, watch): share of strangers named (facegate.decide)
    threshold: float | None = None  # explicit cosine threshold overrides ``far``
    min_face_size: int = 0  # pixels; smaller faces are ignored; 0 = the detector's own (facegate.models.detectors)
    detection_threshold: float = 0.5  # detector-specific confidence cut
    min_score: float = 0.0  # calibrated 0..1 face score (the same scale for every detector) a face must reach
    detect_budget: int = 64  # BlazeFace model windows one image may cost over all passes (1280x720: 8; turned passes: 2 x 1)
    refine_boxes: bool = True  # BlazeFace: tighten boxes with MTCNN's O-Net before landmarks (LFW +0.17 points)
    flip: bool = True  # average the embedding of each chip with its mirror image
    max_pixels: int = 60_000_000  # decompression-bomb guard (about 7700x7700)
    max_file_bytes: int = 256 * 1024 * 1024  # largest image file read (a path to /dev/zero must not fill memory)
    threads: int = 0  # 0 = library default (all cores)
    home: Path = field(default_factory=_default_home)  # user cache: converted weights, user models
    # Gallery (1:N identification)
    gallery: Path | None = None  # SQLite file; default <home>/gallery.sqlite
    backend: str = "sqlite"  # "sqlite" (embedded, SQLite + FAISS) or "milvus"
    milvus_uri: str = ""  # e.g. http://milvus:19530, or a local file path for milvus-lite
    index: str = "auto"  # "auto" (exact below ann_threshold, HNSW above), "flat" or "hnsw"
    ann_threshold: int = 50_000  # identities; past this "auto" builds an ANN index
    top_k: int = 5

    def __post_init__(self) -> None:
        if self.licence_policy not in LICENCE_POLICIES:
            from facegate.errors import UsageError

            raise UsageError(f"unknown licence policy {self.licence_policy!r}; use {' or '.join(LICENCE_POLICIES)}")
        if self.min_face_size < 0:
            from facegate.errors import UsageError

            raise UsageError(f"min_face_size must be 0 (the detector's default) or positive, got {self.min_face_size}")
        if not self.embedder:
            default = PERMISSIVE_EMBEDDER if self.licence_policy == "permissive" else DEFAULT_EMBEDDER
            object.__setattr__(self, "embedder", default)

    def replace(self, **changes: object) -> Config:
        """A copy with some fields changed (configs are immutable)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def cpu_threads(self) -> int:
        """``threads``, or when that is 0 the CPUs this process may use. Libraries whose own
        default is one thread (the TFLite interpreter) are given this number explicitly."""
        return self.threads if self.threads > 0 else available_cpus()

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def gallery_path(self) -> Path:
        return self.gallery if self.gallery is not None else self.home / "gallery.sqlite"


def available_cpus() -> int:
    """The CPUs this process may use (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def model_store_dirs() -> list[Path]:
    """Where `facegate models install` keeps weights fetched from registry packages, in lookup
    order: $FACEGATE_MODELS, else beside the Python environment facegate runs in (so a scratch
    FACEGATE_HOME still finds them), else the user's data folder. The first is where installs go."""
    env = os.environ.get("FACEGATE_MODELS")
    if env:
        return [Path(env).expanduser()]
    xdg = os.environ.get("XDG_DATA_HOME")
    user = (Path(xdg) if xdg else Path.home() / ".local" / "share") / "facegate" / "models"
    env_dir = Path(sys.prefix) / "share" / "facegate" / "models"
    return [env_dir, user] if os.access(sys.prefix, os.W_OK) else [user, env_dir]


def machine_time_zone() -> str:
    """The IANA name of this machine's time zone: ``$TZ`` when it names one, else where ``/etc/localtime``
    points, else ``/etc/timezone``, else ``"UTC"``. Access-rule hours default to it (a door's "08:00" is local
    time), so it must be a name ``zoneinfo`` knows, not an abbreviation like "CET"."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.readlink("/etc/localtime")  # e.g. /usr/share/zoneinfo/Europe/Paris
        candidates.append(link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else "")
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def datasets_dir() -> Path:
    """Where evaluation data lives: $FACEGATE_DATASETS, else ../shared/datasets beside the checkout/cwd."""
    env = os.environ.get("FACEGATE_DATASETS")
    return Path(env) if env else Path("../shared/datasets")
