"""ONNX export: a digitsum network as one self-contained ONNX file, checked against torch.

The graph has two inputs, ``image`` float32 (batch, 1, 28, 28) normalised as in training
and ``number`` int64 (batch,), and two outputs, ``digit_logits`` (batch, 10) and
``sum_logits`` (batch, 19), plus ``is_digit_logit`` (batch,) for a network with a verdict
head; the batch axis is dynamic. The checkpoint's config, metrics and calibration travel in
the graph's metadata, so an .onnx file can be served on its own.

Every export is run by onnxruntime against torch on check images before it is written;
the file appears (atomically) only if the two agree. ``digitsum export`` checks on MNIST test
images when they are at hand; a first-use export (below) and an export without MNIST check on
seeded random images (the check is of arithmetic: both runtimes must compute the same logits).
``cached_export`` exports a checkpoint once to a cache named after its weights: what the CLI
does, and says it does, for ``--runtime onnx`` with a checkpoint (inference never imports this
module: the onnx runtime opens .onnx files only).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import NUM_NUMBERS
from .errors import ExportError, OnnxError, require
from .files import NOVELTY_RULE, NOVELTY_TENSORS, WEIGHTS, atomic_write_bytes, cache_dir
from .mixture import normalize
from .onnx_runtime import INPUTS, OUTPUTS, VERDICT_OUTPUT, OnnxBackend

OPSET = 18
TOLERANCE = 1e-4  # largest accepted |onnxruntime - torch| over both outputs' logits
CHECK_IMAGES = 1000  # images an export is checked on
CHECK_SEED = 0  # seeds the random check images



@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's warnings and log lines (about torchvision, deprecations, axis names)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


class Graph(torch.nn.Module):
    """The network as the exporter traces it: its Logits as a plain tuple, the verdict's only when it has one.
    (The one place that adapts the network's named result to the graph's outputs.)"""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images, numbers):
        return tuple(t for t in self.model(images, numbers) if t is not None)


def to_onnx(model: torch.nn.Module, metadata: dict[str, str] | None = None):
    """The model (evaluation mode, on the CPU) as an ``onnx.ModelProto`` with a dynamic batch axis.

    An error the exporter raises for a model it cannot export (``torch.onnx.OnnxExporterError``) is an
    ExportError; anything else is a bug and keeps its traceback."""
    require("onnx", "onnx", "ONNX export")
    require("onnxscript", "onnx", "ONNX export")
    verdict = getattr(model, "has_verdict", False)
    graph = Graph(copy.deepcopy(model).cpu().eval())
    outputs = list(OUTPUTS) + list(VERDICT_OUTPUT) * verdict
    example = (torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64))  # batch 2: 0 and 1 get specialised
    batch = torch.export.Dim("batch")
    try:
        with _quiet_exporter():
            program = torch.onnx.export(graph, example, dynamo=True, verbose=False, opset_version=OPSET,
                                        input_names=list(INPUTS), output_names=outputs,
                                        dynamic_shapes=({0: batch}, {0: batch}))
    except torch.onnx.OnnxExporterError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExportError(f"torch could not export the model to ONNX: {first}") from None
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def parity(model: torch.nn.Module, backend, images: torch.Tensor, numbers: torch.Tensor) -> tuple[float, int]:
    """(max |backend - torch| over every output, items whose digit or sum argmax differ) on
    uint8 ``images`` (N, 28, 28) with int64 ``numbers`` (N,)."""
    x = normalize(images)  # (N, 1, 28, 28)
    model = copy.deepcopy(model).cpu().eval()
    with torch.inference_mode():
        expected = [t.numpy() for t in model(x, numbers) if t is not None]  # (N, 10), (N, 19)[, (N,)]
    found = [t for t in backend(x.numpy(), numbers.numpy()) if t is not None]
    if len(found) != len(expected):
        return float("inf"), len(images)
    diff = max(float(np.abs(e - f).max()) for e, f in zip(expected, found, strict=True))
    differ = np.zeros(len(images), dtype=bool)
    for e, f in zip(expected[:2], found[:2], strict=True):
        differ |= e.argmax(1) != f.argmax(1)
    return diff, int(differ.sum())


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, check_images: torch.Tensor,
                check_numbers: torch.Tensor, metadata: dict[str, str] | None = None,
                tolerance: float = TOLERANCE) -> float:
    """Export ``model`` to ``path`` as ONNX and return the max abs difference from torch.

    The graph is run by onnxruntime on ``check_images`` uint8 (N, 28, 28) with
    ``check_numbers`` int64 (N,) before anything is written; unless every logit is within
    ``tolerance`` of torch's and every argmax is the same, ExportError is raised and no
    file is left. ``metadata`` (string to string) is stored in the graph.
    """
    images, numbers = torch.as_tensor(check_images), torch.as_tensor(check_numbers)
    if images.dtype != torch.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) == 0:
        raise ExportError(f"check images must be uint8 (N, 28, 28) with N > 0, got {images.dtype} "
                          f"{tuple(images.shape)}")
    if numbers.shape != (len(images),) or numbers.dtype != torch.int64:
        raise ExportError(f"check numbers must be int64 ({len(images)},), got {numbers.dtype} {tuple(numbers.shape)}")
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give the .onnx file to write")
    if not path.parent.is_dir():
        raise ExportError(f"folder {path.parent} does not exist; create it or choose another --output")
    data = to_onnx(model, metadata).SerializeToString()
    try:
        diff, differ = parity(model, OnnxBackend(data, threads=1), images, numbers)
    except OnnxError as error:
        raise ExportError(f"onnxruntime cannot run the exported graph: {error}") from None
    if not diff <= tolerance or differ:  # `not <=` also catches NaN
        raise ExportError(f"onnxruntime and torch disagree on {len(images)} images: max abs difference "
                          f"{diff:.3g} (limit {tolerance:g}), {differ} argmax differences; nothing written")
    atomic_write_bytes(path, data)
    return diff


def random_check_batch(n: int = CHECK_IMAGES) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(uint8 images (n, 28, 28), int64 numbers (n,), what they are): seeded random images and numbers,
    to check an export's arithmetic where no MNIST files are at hand (the same on every machine)."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    images = torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8)
    numbers = torch.randint(0, NUM_NUMBERS, (n,), generator=generator)
    return images, numbers, f"{n} seeded random images"


def describe(checkpoint) -> dict[str, str]:
    """The graph metadata that lets an .onnx file stand alone: the checkpoint's config, metrics and calibration."""
    described = {"digitsum.config": json.dumps(checkpoint.config), "digitsum.metrics": json.dumps(checkpoint.metrics),
                 "digitsum.calibration": json.dumps(checkpoint.calibration.to_dict())}
    if checkpoint.novelty is not None:  # computed in the graph; its description for whoever reads the file
        described["digitsum.novelty"] = json.dumps(checkpoint.novelty.info)
    return described


def default_onnx_cache(checkpoint_path: str | os.PathLike) -> Path:
    """Where a checkpoint's first-use export is kept: ``$XDG_CACHE_HOME/digitsum/onnx/<sha256[:16]>.onnx``,
    named after the SHA-256 of its weights file (``checkpoint_path`` or the run directory's model.safetensors)
    and of the verdict rule's files beside it, where there are some (novelty.py)."""
    weights = Path(checkpoint_path)
    weights = weights / WEIGHTS if weights.is_dir() else weights
    try:
        digest = hashlib.sha256(weights.read_bytes())
        for extra in (weights.parent / NOVELTY_TENSORS, weights.parent / NOVELTY_RULE):
            if extra.is_file():
                digest.update(extra.read_bytes())
        digest = digest.hexdigest()[:16]
    except OSError as error:
        raise ExportError(f"cannot read checkpoint weights {weights}: {error.strerror or error}") from None
    return cache_dir("onnx") / f"{digest}.onnx"


def cached_export(path: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """(an .onnx file of the checkpoint at ``path``, whether it was exported now). ``path`` is a run
    directory, a .safetensors file or None for the bundled model; its export is kept in
    ``default_onnx_cache`` and made (checked on seeded random images) when that file is missing or no
    longer loads."""
    checkpoint = load_checkpoint(path)
    cache = default_onnx_cache(checkpoint.path)
    if cache.is_file():
        with contextlib.suppress(OnnxError):
            OnnxBackend(cache, threads=1)
            return cache, False
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create the ONNX cache folder {cache.parent}: {error.strerror}") from None
    images, numbers, _ = random_check_batch()
    export_onnx(checkpoint.inference_model, cache, images, numbers, describe(checkpoint))
    return cache, True
