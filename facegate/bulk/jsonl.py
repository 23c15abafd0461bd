"""Bulk embedding: many files in, one JSONL record per face streamed to disk, resumable.

Files are taken in a fixed order (given files as given, folders walked in sorted
order), decoded either in-process or in a pool of worker processes (``workers``),
and the decoded images go in chunks of ``chunk`` files through one
:meth:`Pipeline.faces_batch` call each (detection and embedding batched in the main
process). Each chunk's records are appended and fsync'ed before the next chunk, so
the output only ever grows by whole chunks, in file order, and is the same whatever
the number of workers.

A run that is interrupted (Ctrl-C, kill, power) is resumed by running the same
command again: files already recorded in the output are skipped, and a partially
written last line is discarded. Unreadable files become error records instead of
stopping the run.

Records (one JSON object a line):

* a face: ``{"file", "face": k, "box", "landmarks", "score", "detector", "embedding"}``
* a photo without a face: ``{"file", "faces": 0}``
* an unreadable file: ``{"file", "error": code, "message"}``

Past one machine, :func:`embed_with_ray` splits the same file list into shards run as
Ray tasks (each builds its own Pipeline from the Config) and writes their records to
the same JSONL, in shard order, with the same resume rule. Ray is an optional extra.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from facegate.config import Config, available_cpus
from facegate.errors import FacegateError, UsageError
from facegate.files import open_private
from facegate.image import IMAGE_SUFFIXES, load_image

if TYPE_CHECKING:
    from facegate.pipeline import Pipeline

log = logging.getLogger(__name__)

Record = dict[str, Any]
# One decoded input: (file as recorded, image or None, (error code, message) or None)
Decoded = tuple[str, "np.ndarray | None", "tuple[str, str] | None"]


def uses_device_path(config: Config) -> bool:
    """Whether bulk embedding runs the device path (:mod:`facegate.bulk.device`): whenever a device
    other than the CPU is asked for. The CPU path stays the default."""
    return config.device != "cpu"


def default_workers() -> int:
    """Decode processes when none are asked for: the CPUs this process may use."""
    return available_cpus()


def iter_image_files(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files given directly, and image files found by walking given folders (sorted)."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / f
        else:
            yield p  # missing/unreadable files become error records


def _to_do(files: list[Path], done: set[str]) -> list[bool]:
    """For each file, whether it still has to be embedded: not in ``done`` (keys of
    :func:`file_key`) and not an earlier spelling of the same file in this run."""
    seen = set(done)
    mask = []
    for f in files:
        key = file_key(f)
        mask.append(key not in seen)
        seen.add(key)
    return mask


def _check_out(out: Path) -> None:
    if out.suffix.lower() not in (".jsonl", ".json"):
        raise UsageError(f"--out {out}: use a .jsonl file (one JSON record per face)")


def file_key(path: str | os.PathLike) -> str:
    """The identity of an input file for resuming: its real path, so ``photos/a.jpg``,
    ``./photos/a.jpg``, ``/abs/photos/a.jpg`` and a symlink to it are one file."""
    return os.path.realpath(path)


def _done_files(out: Path) -> set[str]:
    """Keys (:func:`file_key`) of the files already in a JSONL output; truncates a torn last
    line left by a crash. Relative names recorded by an earlier run resolve from the current
    folder."""
    if not out.exists():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with open(out, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                done.add(file_key(json.loads(raw)["file"]))
            except (ValueError, KeyError):
                break
            good_bytes += len(raw)
    if good_bytes != out.stat().st_size:
        log.warning("%s: discarding a partly written last record", out)
        with open(out, "r+b") as fh:
            fh.truncate(good_bytes)
    return done


def _open_output(out: Path):
    """The output opened for appending, locked so that two runs cannot interleave their records."""
    fh = open_private(out, "a")  # embeddings identify people: 0600, whatever the umask
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        raise UsageError(f"{out}: another run is writing this file; wait for it to finish or use another --out") from exc
    return fh


# -- decoding ------------------------------------------------------------------------------
_WORKER_CONFIG: Config | None = None


def _init_decoder(config: Config) -> None:
    import signal

    global _WORKER_CONFIG
    _WORKER_CONFIG = config
    # Ctrl-C reaches the whole process group: the main process stops the pool, workers stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode(path: str) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """Runs in a worker process: the decoded image, or the error a record will carry."""
    try:
        return load_image(path, _WORKER_CONFIG), None
    except FacegateError as exc:
        return None, (exc.code, str(exc))


class _Decoder:
    """Decoded images in input order, from worker processes or in-process.

    At most ``ahead`` files are being decoded or waiting to be taken at any time, so a
    folder of any size streams through in bounded memory.
    """

    def __init__(self, pipeline: Pipeline, workers: int, ahead: int) -> None:
        self.pipeline = pipeline
        self.workers = workers
        self.ahead = max(1, ahead)
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Decoder:
        if self.workers > 0:
            import multiprocessing

            # spawn: the main process holds model threads (torch, TFLite) that fork would copy half-way.
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_decoder, initargs=(self.pipeline.config,),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _local(self, name: str, path: Path) -> Decoded:
        try:
            return name, self.pipeline.load(path), None
        except FacegateError as exc:
            return name, None, (exc.code, str(exc))

    def __call__(self, files: Sequence[Path]) -> Iterator[Decoded]:
        if self.pool is None:
            for f in files:
                yield self._local(str(f), f)
            return
        pending: deque[tuple[str, Future]] = deque()
        it = iter(files)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.ahead:
                f = next(it, None)
                if f is None:
                    exhausted = True
                else:
                    pending.append((str(f), self.pool.submit(_decode, str(f))))
            if not pending:
                return
            name, fut = pending.popleft()
            image, err = fut.result()
            yield name, image, err


# -- detection + embedding -----------------------------------------------------------------
def _records(pipeline: Pipeline, batch: list[Decoded]) -> list[list[Record]]:
    """The records of each file of a batch, in batch order; one faces_batch call for all
    (``pipeline``: a Pipeline or a :class:`facegate.bulk.device.DevicePath`)."""
    out: list[list[Record]] = [[] for _ in batch]
    ok = [i for i, (_, image, _) in enumerate(batch) if image is not None]
    for i, (name, _, err) in enumerate(batch):
        if err is not None:
            out[i] = [{"file": name, "error": err[0], "message": err[1]}]
    found = pipeline.faces_batch([batch[i][1] for i in ok]) if ok else []
    for i, faces in zip(ok, found):
        name = batch[i][0]
        if not faces:
            out[i] = [{"file": name, "faces": 0}]
            continue
        for k, face in enumerate(faces):
            rec = {"file": name, "face": k, **face.to_dict()}
            rec["embedding"] = [round(float(v), 7) for v in np.asarray(face.embedding)]
            out[i].append(rec)
    return out


def _batches(decoded: Iterable[Decoded], chunk: int) -> Iterator[list[Decoded]]:
    batch: list[Decoded] = []
    for item in decoded:
        batch.append(item)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def _new_counts(files: int, skipped: int) -> dict[str, int]:
    return {"files": files, "skipped_done": skipped, "faces": 0, "no_face": 0, "errors": 0}


def _write(fh, per_file: Iterable[list[Record]], counts: dict[str, int]) -> None:
    """Append whole files' records, then flush and fsync (the unit a crash can lose)."""
    for recs in per_file:
        for rec in recs:
            if "error" in rec:
                counts["errors"] += 1
            elif rec.get("faces") == 0:
                counts["no_face"] += 1
            else:
                counts["faces"] += 1
            fh.write(json.dumps(rec) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def embed_to_jsonl(
    pipeline: Pipeline,
    inputs: Iterable[str | Path],
    out: Path,
    chunk: int = 16,
    progress: bool = True,
    workers: int | None = 0,
    device_path: bool | None = None,
) -> dict[str, int]:
    """Embed every face of every image into ``out`` (JSONL). Returns counts.

    ``workers``: decode processes (``None``: one per CPU; ``0``: decode in this process).
    Detection and embedding run here, ``chunk`` files at a time. The output does not
    depend on ``workers``. Workers are started with ``spawn``, so a script that calls this
    with ``workers != 0`` needs the usual ``if __name__ == "__main__":`` guard.

    ``device_path`` (default: :func:`uses_device_path`): decode, MTCNN, landmarks, warps and embedding all on
    the torch device (:mod:`facegate.bulk.device`), fed by its threaded loader; same records.
    """
    out = Path(out)
    _check_out(out)
    if chunk < 1:
        raise UsageError("chunk must be at least 1")
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise UsageError("--workers is 0 (decode in the main process) or more")
    files = list(iter_image_files(inputs))
    on_device = None
    if uses_device_path(pipeline.config) if device_path is None else device_path:
        from facegate.bulk.device import DevicePath  # imports torch: only when asked for

        on_device = DevicePath(pipeline.config)  # a missing GPU fails here, before the output is touched
    with _open_output(out) as fh:
        done = _done_files(out)
        todo = [f for f, new in zip(files, _to_do(files, done)) if new]
        counts = _new_counts(len(files), len(files) - len(todo))
        workers = min(workers, len(todo))
        if on_device is not None:
            _embed_device(on_device, todo, fh, counts, progress)
        else:
            _embed_local(pipeline, todo, fh, counts, chunk, workers, progress)
    return counts


def _embed_device(path, todo: list[Path], fh, counts: dict[str, int], progress: bool) -> None:
    """The device path: its loader's batches (decoded ahead in threads) through ``path.faces_batch``."""
    batch = max(16, path.config.batch_size)
    with (
        tqdm(total=len(todo), unit="img", desc=f"embedding ({path.device})", disable=not progress) as bar,
        path.loader(todo, batch=batch) as loader,
    ):
        for decoded in loader:
            _write(fh, _records(path, decoded), counts)
            bar.update(len(decoded))


def _embed_local(pipeline: Pipeline, todo: list[Path], fh, counts: dict[str, int], chunk: int, workers: int,
                 progress: bool) -> None:
    with (
        tqdm(total=len(todo), unit="img", desc="embedding", disable=not progress) as bar,
        _Decoder(pipeline, workers, ahead=chunk + 2 * workers) as decode,
    ):
        for batch in _batches(decode(todo), chunk):
            _write(fh, _records(pipeline, batch), counts)
            bar.update(len(batch))


# -- Ray -------------------------------------------------------------------------------------
_RAY_PIPELINES: dict[Config, Pipeline] = {}


def _shard_pipeline(config: Config) -> Pipeline:
    """One Pipeline per Config per worker process: Ray reuses processes, models load once."""
    from facegate.pipeline import Pipeline

    pipe = _RAY_PIPELINES.get(config)
    if pipe is None:
        pipe = _RAY_PIPELINES[config] = Pipeline(config)
    return pipe


def embed_shard(config: Config, items: Sequence[tuple[str, str]], chunk: int = 16) -> list[list[Record]]:
    """Records for one shard of files (a Ray task; also callable directly).

    ``items`` are (name recorded in the output, path to read) pairs; the path is absolute
    so a worker's working directory does not matter. Returns one list of records per item.
    """
    pipe = _shard_pipeline(config)
    results: list[list[Record]] = []

    def read() -> Iterator[Decoded]:
        for name, path in items:
            try:
                yield name, pipe.load(path), None
            except FacegateError as exc:
                # Same message as a local run: name the file as the user gave it.
                yield name, None, (exc.code, str(exc).replace(path, name))

    for batch in _batches(read(), chunk):
        results.extend(_records(pipe, batch))
    return results


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UsageError(
            "--ray needs Ray, an optional extra: pip install 'facegate[scale]' (or pip install 'ray[default]')"
        ) from exc
    return ray


def _ray_connect(ray, address: str, num_cpus: int | None) -> bool:
    """Connect to (or start) Ray; True when this call started it and must shut it down."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address == "local":
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        # "auto", "ray://host:port" (Ray Client) or "host:port" (a cluster's GCS address)
        kwargs.pop("include_dashboard")
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UsageError(f"--ray {address}: cannot connect to a Ray cluster ({exc})") from exc
    return True


def embed_with_ray(
    address: str,
    config: Config,
    inputs: Iterable[str | Path],
    out: Path,
    *,
    shard_size: int = 256,
    chunk: int = 16,
    progress: bool = True,
    num_cpus: int | None = None,
    max_inflight: int | None = None,
    cpus_per_task: float = 1,
) -> dict[str, int]:
    """:func:`embed_to_jsonl` over a Ray cluster: the same records in the same file.

    The sorted file list is cut into shards of ``shard_size`` files (stable across runs,
    so resuming finds the same shards); a shard whose files are all in ``out`` already is
    skipped, a partly done one runs only its missing files. Each shard is one Ray task that
    decodes, detects and embeds with its own Pipeline built from ``config``; the driver
    writes shard results in shard order (fsync per shard). ``address``: ``"local"`` starts a
    local Ray instance (``num_cpus`` CPUs), ``"auto"``, ``"ray://host:port"`` or
    ``"host:port"`` join a running cluster; an already initialised Ray is used as it is.
    Every node must read the files at the paths given (shared storage) and have facegate
    installed.
    """
    out = Path(out)
    _check_out(out)
    if shard_size < 1 or chunk < 1:
        raise UsageError("shard size and chunk must be at least 1")
    ray = _import_ray()
    files = list(iter_image_files(inputs))
    with _open_output(out) as fh:
        done = _done_files(out)
        mask = _to_do(files, done)
        todo_count = sum(mask)
        counts = _new_counts(len(files), len(files) - todo_count)
        shards: list[list[tuple[str, str]]] = []
        for start in range(0, len(files), shard_size):
            part = zip(files[start : start + shard_size], mask[start : start + shard_size])
            items = [(str(f), str(Path(f).absolute())) for f, new in part if new]
            if items:  # a shard whose files are all done is skipped
                shards.append(items)
        if not shards:
            return counts
        started = _ray_connect(ray, address, num_cpus)
        try:
            task = ray.remote(num_cpus=cpus_per_task, max_retries=2)(embed_shard)
            if max_inflight is None:
                cpus = int(ray.cluster_resources().get("CPU", 1))
                max_inflight = max(2, 2 * int(cpus / cpus_per_task))
            # Each task holds cpus_per_task CPUs; threads=0 ("all cores") in every task at once
            # would oversubscribe each node (TFLite and ONNX Runtime both honour threads).
            if config.threads == 0:
                config = config.replace(threads=max(1, int(cpus_per_task)))
            config_ref = ray.put(config)
            pending: deque[tuple[int, Any]] = deque()
            nxt = 0
            with tqdm(total=todo_count, unit="img", desc="embedding (ray)", disable=not progress) as bar:
                while nxt < len(shards) or pending:
                    while nxt < len(shards) and len(pending) < max_inflight:
                        pending.append((nxt, task.remote(config_ref, shards[nxt], chunk)))
                        nxt += 1
                    i, ref = pending.popleft()  # shard order, whatever order they finish in
                    _write(fh, ray.get(ref), counts)
                    bar.update(len(shards[i]))
        finally:
            if started:
                ray.shutdown()
    return counts

