"""onnxruntime as a digitsum backend: an exported graph as a function of numpy arrays.

``OnnxBackend`` has the call signature of ``predict.TorchBackend``: normalised images
float32 (N, 1, 28, 28) and numbers int64 (N,) in, ``Logits`` out: digit (N, 10), sum (N, 19),
and the verdict's (N,) from a graph that has them (else None). It runs on the CPU
with explicit thread settings, and refuses, with one line naming the file, a file that is
unreadable, is not ONNX, or is not a digitsum graph. onnxruntime is imported only when a
backend is built. It opens .onnx files only: making one from a checkpoint is export.py's job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .calibration import Calibration
from .errors import ConfigError, OnnxError, require
from .model import Logits

# name -> (element type, shape after the batch axis), as onnxruntime reports them
INPUTS = {"image": ("tensor(float)", [1, 28, 28]), "number": ("tensor(int64)", [])}
OUTPUTS = {"digit_logits": ("tensor(float)", [10]), "sum_logits": ("tensor(float)", [19])}
VERDICT_OUTPUT = {"is_digit_logit": ("tensor(float)", [])}  # a network with a verdict head adds it


def import_onnxruntime():
    """The onnxruntime module, or MissingExtra saying how to install it."""
    return require("onnxruntime", "onnx", "the onnx runtime")


def session_options(threads: int = 0, optimization: str = "all", spinning: bool = False):
    """onnxruntime session options: ``threads`` intra-op threads (0: one per physical core),
    one inter-op thread, sequential execution, graph optimisation level ``optimization``
    (``disable``, ``basic``, ``extended`` or ``all``), and whether idle threads spin (off: spinning
    burns CPU that the rest of the process, or the machine, could use; see benchmarks/bench_inference.py)."""
    ort = import_onnxruntime()

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ConfigError(f"unknown graph optimisation level {optimization!r}; use one of {', '.join(levels)}")
    if threads < 0:
        raise ConfigError(f"threads must be 0 (one per core) or more, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3  # errors only: nothing on stderr for a healthy graph
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def _reason(error: Exception) -> str:
    """onnxruntime's message without its ``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF :`` prefix."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text.rsplit(" : ", 1)[-1].strip() if text.startswith("[ONNXRuntimeError]") else text


def _check_signature(session, name: str) -> list[str]:
    """The graph's output names, in digitsum's order; OnnxError unless its inputs and outputs are digitsum's
    (the verdict's output is optional), each with a dynamic batch axis."""
    outputs = dict(OUTPUTS)
    if any(arg.name in VERDICT_OUTPUT for arg in session.get_outputs()):
        outputs.update(VERDICT_OUTPUT)
    pairs = (("inputs", INPUTS, session.get_inputs()), ("outputs", outputs, session.get_outputs()))
    for kind, expected, found in pairs:
        names = [arg.name for arg in found]
        if sorted(names) != sorted(expected):
            raise OnnxError(f"{name} is not a digitsum graph: its {kind} are {names}, expected {list(expected)}; "
                            "export one with digitsum export")
        for arg in found:
            dtype, rest = expected[arg.name]
            shape = list(arg.shape)
            if arg.type != dtype or len(shape) != 1 + len(rest) or shape[1:] != rest:
                want = ["batch", *rest]
                raise OnnxError(f"{name}: {arg.name} is {arg.type} {shape}, expected {dtype} {want}; "
                                "export one with digitsum export")
            if isinstance(shape[0], int):
                raise OnnxError(f"{name}: {arg.name} has a fixed batch of {shape[0]}, expected a dynamic batch "
                                "axis; export one with digitsum export")
    return list(outputs)


class OnnxBackend:
    """An exported digitsum graph run by onnxruntime on the CPU."""

    def __init__(self, source: str | os.PathLike | bytes, threads: int = 0, optimization: str = "all",
                 spinning: bool = False):
        """``source`` is an .onnx file or its bytes; see ``session_options`` for the rest."""
        ort = import_onnxruntime()

        if isinstance(source, bytes):
            self.name, data = "the exported graph", source
        else:
            self.name = str(source)
            try:
                data = Path(source).read_bytes()
            except OSError as error:
                raise OnnxError(f"cannot read ONNX file {source}: {error.strerror or error}") from None
        try:
            self.session = ort.InferenceSession(data, session_options(threads, optimization, spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's errors share no base class but Exception
            raise OnnxError(f"{self.name} is not a valid ONNX model ({_reason(error)}); "
                            "export one with digitsum export") from None
        self.outputs = _check_signature(self.session, self.name)

    def __call__(self, images: np.ndarray, numbers: np.ndarray) -> Logits:
        """images float32 (N, 1, 28, 28) normalised, numbers int64 (N,) -> Logits (N, 10), (N, 19), (N,) or None."""
        feeds = {"image": np.ascontiguousarray(images, dtype=np.float32),
                 "number": np.ascontiguousarray(numbers, dtype=np.int64)}
        return Logits(*self.session.run(self.outputs, feeds))

    def metadata(self, key: str) -> dict:
        """The JSON object stored under ``digitsum.<key>`` in the graph's metadata ({} if absent)."""
        text = self.session.get_modelmeta().custom_metadata_map.get(f"digitsum.{key}")
        try:
            value = json.loads(text) if text else {}
        except json.JSONDecodeError:
            raise OnnxError(f"{self.name}: its digitsum.{key} metadata is not valid JSON") from None
        return value if isinstance(value, dict) else {}


def open_onnx(path: str | os.PathLike, threads: int | None = None) -> tuple[OnnxBackend, dict, dict, Calibration]:
    """(backend, config, metrics, calibration) of an .onnx file that ``digitsum export`` wrote (the last three
    from its metadata). ``threads`` defaults to torch's thread count, so one setting (``--threads``) serves
    both runtimes."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    backend = OnnxBackend(path, threads)
    calibration = Calibration.from_dict(backend.metadata("calibration"))
    return backend, backend.metadata("config"), backend.metadata("metrics"), calibration
