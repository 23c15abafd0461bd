"""facegate.onnxrt: the one place that makes ONNX Runtime sessions and maps devices to providers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from facegate.config import Config  # noqa: E402
from facegate.errors import DeviceError, ModelError, UsageError  # noqa: E402
from facegate.onnxrt import providers, resolve_engine, resolve_runtime, session  # noqa: E402


def _identity_model(path: Path) -> Path:
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_cpu_providers_and_a_session_that_runs(tmp_path, monkeypatch):
    assert providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.chdir(tmp_path)  # the profiler, were it on, would write its JSON here
    sess = session(_identity_model(tmp_path / "id.onnx"), providers("cpu"), threads=1)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x)
    assert not sess.get_session_options().enable_profiling
    assert sess.end_profiling() == ""  # nothing was being profiled
    assert not list(tmp_path.glob("*profile*.json"))


def test_profiling_only_when_asked(tmp_path):
    sess = session(_identity_model(tmp_path / "id.onnx"), providers("cpu"), profile=tmp_path / "trace")
    sess.run(None, {"x": np.zeros((1, 3), np.float32)})
    written = Path(sess.end_profiling())
    assert written.parent == tmp_path and written.name.startswith("trace") and written.exists()


def test_cuda_without_a_gpu_is_a_device_error():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA support")
    with pytest.raises(DeviceError, match="no CUDA support"):
        providers("cuda")
    with pytest.raises(DeviceError, match="no CUDA support"):
        providers("cuda:1")


def test_unknown_devices_and_runtimes_are_refused():
    with pytest.raises(DeviceError, match="unknown device"):
        providers("tpu")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_engine(Config(device="npu"))
    with pytest.raises(UsageError, match="not offered"):
        resolve_runtime("litert", "cpu")  # offered: onnxruntime, torch
    assert resolve_engine(Config()) == ("cpu", "onnxruntime", ["CPUExecutionProvider"])
    assert resolve_engine(Config(runtime="torch")) == ("cpu", "torch", None)


def test_a_file_onnx_runtime_cannot_load_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        session(bad, providers("cpu"))
