"""Where facegate's own networks run: the device check, the runtime choice, and every ONNX Runtime session.

This is the one module that knows devices. A device is named explicitly (``Config.device``):
``"cpu"`` or ``"cuda[:N]"``. Asking for a GPU that is not there (no CUDA for PyTorch, or an
onnxruntime built without the CUDA provider) raises :class:`facegate.errors.DeviceError` when
the model object is made; nothing quietly falls back to the CPU.

Every ONNX Runtime session in facegate is made by :func:`session`, with the providers of
:func:`providers`, so the session settings (threads, no spinning, denormals flushed, profiling
off unless asked for) are the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facegate.config import Config
from facegate.errors import DeviceError, ModelError, UsageError

RUNTIMES = ("auto", "onnxruntime", "torch", "litert")


def resolve_torch_device(device: str) -> str:
    """Check that the requested torch device exists. A missing GPU is an error, never a CPU run."""
    if device == "cpu":
        return "cpu"
    import torch  # only for a GPU: the CPU default may run without PyTorch loaded

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} was requested but no CUDA GPU is available to PyTorch; "
                "use --device cpu to run on the CPU"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist ({torch.cuda.device_count()} GPU(s) present)")
        return device
    raise DeviceError(f"unknown device {device!r}; use 'cpu' or 'cuda[:N]'")


def resolve_runtime(runtime: str, device: str, cpu_default: str = "onnxruntime",
                    offered: tuple[str, ...] = ("onnxruntime", "torch")) -> str:
    """``auto`` is the network's fastest CPU engine (``cpu_default``, measured in
    ``benchmarks/bench_embed.py``) on the CPU and PyTorch on CUDA (fp16 available)."""
    if runtime == "auto":
        return cpu_default if device == "cpu" else "torch"
    if runtime not in offered:
        raise UsageError(f"runtime {runtime!r} is not offered for this model; use auto or {', '.join(offered)}")
    if runtime == "litert" and device != "cpu":
        raise DeviceError("the litert runtime runs on the CPU only; use --runtime torch on a GPU")
    return runtime


def resolve_engine(config: Config, cpu_default: str = "onnxruntime",
                   offered: tuple[str, ...] = ("onnxruntime", "torch")) -> tuple[str, str, list | None]:
    """(torch device, runtime, ONNX Runtime providers or None) for one of facegate's own networks,
    from ``config.device`` and ``config.runtime``.

    Checked when a model object is made, not at its first input: a missing GPU, or an
    onnxruntime without the CUDA provider, fails at once with :class:`DeviceError`.
    """
    device = resolve_torch_device(config.device)
    runtime = resolve_runtime(config.runtime, device, cpu_default, offered)
    if runtime != "onnxruntime":
        return device, runtime, None
    return device, runtime, providers(device)


def providers(device: str) -> list:
    """ONNX Runtime execution providers for the requested device, named explicitly (no silent fallback)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(
                f"device {device!r} was requested but this onnxruntime has no CUDA support "
                "(install onnxruntime-gpu, or use --device cpu)"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index})]
    raise DeviceError(f"unknown device {device!r}; use 'cpu' or 'cuda[:N]'")


def session(path: Path, providers: list, threads: int = 0, profile: Path | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for the model file ``path`` on ``providers`` (see :func:`providers`).

    ``threads`` > 0 fixes the intra-op pool (inter-op: 1); 0 leaves ONNX Runtime's default.
    ONNX Runtime's profiler stays off unless ``profile`` names a file prefix for its JSON trace
    (``<profile>_<date>.json``): it writes one file per session otherwise, into the working folder.
    A file ONNX Runtime cannot load is a :class:`ModelError`.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    # ONNX Runtime's idle worker threads spin for a while after each run; beside the
    # detector's own threads on a small machine that spinning took the cores the detector
    # needed (BlazeFace 43 -> 67 ms per 720p frame on 2 cores). Parked threads cost little here.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Denormal weights and activations run up to 4x slower on x86; they are numerically nothing.
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.enable_profiling = profile is not None
    if profile is not None:
        opts.profile_file_prefix = str(profile)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"{path} is not a loadable ONNX model: {' '.join(str(exc).split())[:300]}") from exc


__all__ = ["RUNTIMES", "providers", "resolve_engine", "resolve_runtime", "resolve_torch_device", "session"]
