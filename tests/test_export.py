"""ONNX export and the onnx runtime: parity with torch on real MNIST, the graph's contract,
predict --runtime onnx, and one clear line for a bad .onnx file or a failed export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from digitsum.checkpoint import load_checkpoint
from digitsum.cli.export import check_batch
from digitsum.errors import ConfigError, ExportError, OnnxError
from digitsum.export import (
    TOLERANCE,
    cached_export,
    default_onnx_cache,
    describe,
    export_onnx,
    random_check_batch,
    to_onnx,
)
from digitsum.mixture import normalize
from digitsum.onnx_runtime import OnnxBackend
from digitsum.predict import TorchBackend, load_model
from helpers import assert_one_line_error, encode, run_cli


@pytest.fixture(scope="module")
def checkpoint(small_run):
    return load_checkpoint(small_run)


@pytest.fixture(scope="module")
def exported(checkpoint, mnist_dir, tmp_path_factory):
    """(the .onnx file, the max abs difference its export reported) for the small run."""
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    images, numbers, _ = check_batch(mnist_dir, 1000)
    return path, export_onnx(checkpoint.inference_model, path, images, numbers, describe(checkpoint))


@pytest.fixture
def cache_home(tmp_path, monkeypatch, mnist_dir):
    """A private $XDG_CACHE_HOME, and MNIST where first-use exports look for check images."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITSUM_DATA", str(mnist_dir))
    return tmp_path / "cache"


class Noisy(torch.nn.Module):
    """The real network plus noise: onnxruntime's random numbers cannot match torch's."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.has_verdict = inner.has_verdict

    def forward(self, images, numbers):
        out = self.inner(images, numbers)
        return out._replace(digit=out.digit + torch.rand_like(out.digit))


def test_the_reported_difference_is_measured_on_the_check_images(exported, checkpoint, mnist_dir):
    path, reported = exported
    images, numbers, _ = check_batch(str(mnist_dir), 1000)
    x = normalize(images)
    with torch.inference_mode():  # the checkpoint's model as it loads, in its own memory layout
        expected = [t.numpy() for t in checkpoint.inference_model(x, numbers)]  # digit, sum, verdict
    found = OnnxBackend(path, threads=1)(x.numpy(), numbers.numpy())
    measured = max(float(np.abs(e - f).max()) for e, f in zip(expected, found, strict=True))
    assert reported == pytest.approx(measured, rel=1e-6, abs=1e-12)
    assert 0 < reported < TOLERANCE  # float32 graphs differ a little, never by more than the tolerance


@pytest.mark.parametrize("batch", [1, 257])
def test_onnx_and_torch_agree_at_batch_size(exported, checkpoint, mnist, batch):
    images = normalize(mnist["test"].images[-batch:]).numpy()  # (B, 1, 28, 28), not the export's check images
    numbers = (np.arange(batch) * 7 % 10).astype(np.int64)  # (B,)
    expected = TorchBackend(checkpoint.inference_model)(images, numbers)
    found = OnnxBackend(exported[0], threads=1)(images, numbers)
    for e, f, shape in zip(expected, found, [(batch, 10), (batch, 19), (batch,)], strict=True):
        assert f.shape == shape and f.dtype == np.float32
        assert np.abs(e - f).max() <= TOLERANCE
        assert (e.argmax(-1) == f.argmax(-1)).all() if f.ndim == 2 else ((e > 0) == (f > 0)).all()


def test_graph_has_named_inputs_outputs_and_one_dynamic_batch_axis(exported):
    path, _ = exported
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 17

    def signature(values):
        tensors = {v.name: v.type.tensor_type for v in values}
        return {name: (t.elem_type, [d.dim_param or d.dim_value for d in t.shape.dim]) for name, t in tensors.items()}

    f32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    assert signature(graph.graph.input) == {"image": (f32, ["batch", 1, 28, 28]), "number": (i64, ["batch"])}
    assert signature(graph.graph.output) == {"digit_logits": (f32, ["batch", 10]), "sum_logits": (f32, ["batch", 19]),
                                             "is_digit_logit": (f32, ["batch"])}


def test_exported_file_is_self_contained_and_small(exported):
    path, _ = exported
    graph = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in graph.graph.initializer)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no external data, no leftover temporary
    assert path.stat().st_size < 2_000_000


def test_onnx_file_carries_config_and_metrics(exported, checkpoint):
    predictor = load_model(exported[0], runtime="onnx")
    assert predictor.config == checkpoint.config and predictor.metrics == checkpoint.metrics


def test_predict_runtime_onnx_gives_the_torch_answers(capsys, tmp_path, small_run, mnist, cache_home):
    for i in range(3):
        Image.fromarray(mnist["test"].images[i].numpy()).save(tmp_path / f"{i}.png")
    answers, said = {}, []
    for runtime in ("torch", "onnx"):
        answers[runtime] = []
        for i in range(3):
            code, out, err = run_cli(capsys, "predict", str(tmp_path / f"{i}.png"), "--number", str(i + 4),
                                     "--checkpoint", str(small_run), "--runtime", runtime, "--json")
            assert code == 0, err
            said.append(err)
            record = json.loads(out)
            answers[runtime].append((record["digit"], record["sum"], record["digit_probability"]))
    for (digit, total, p), (digit_onnx, total_onnx, p_onnx) in zip(answers["torch"], answers["onnx"], strict=True):
        assert (digit, total) == (digit_onnx, total_onnx) and p == pytest.approx(p_onnx, abs=1e-4)
    assert [d for d, _, _ in answers["onnx"]] == mnist["test"].labels[:3].tolist()
    assert default_onnx_cache(small_run).is_file()  # exported on first use, under $XDG_CACHE_HOME
    assert default_onnx_cache(small_run).is_relative_to(cache_home)
    assert said[:3] == ["", "", ""] and "" == said[4] == said[5]  # only the export is announced, once
    assert f"exported {small_run} to ONNX for the onnx runtime: {default_onnx_cache(small_run)}" in said[3]


def test_the_onnx_runtime_opens_onnx_files_and_never_exports(small_run, cache_home):
    with pytest.raises(ConfigError, match="runs .onnx files.*export it first"):
        load_model(small_run, runtime="onnx")
    assert not cache_home.exists()  # nothing was exported behind the caller's back


def test_a_corrupt_cached_export_is_redone(small_run, cache_home, mnist):
    cache = default_onnx_cache(small_run)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"not a graph")
    assert cached_export(small_run) == (cache, True)
    assert cached_export(small_run) == (cache, False)  # a good one is used as it is
    predictor = load_model(cache, runtime="onnx")
    digits = mnist["test"].images[:20].numpy()
    onnx_answers = [(p.digit, p.sum) for p in predictor.predict_arrays(digits, list(range(10)) * 2)]
    torch_answers = [(p.digit, p.sum) for p in load_model(small_run).predict_arrays(digits, list(range(10)) * 2)]
    assert onnx_answers == torch_answers
    OnnxBackend(cache)  # loads: the cache was rewritten


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage", "truncated"])
def test_corrupt_onnx_file_is_one_clear_line(capsys, tmp_path, exported, mnist, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(exported[0].read_bytes()[:5000] if content == "truncated" else content)
    image = tmp_path / "x.png"
    image.write_bytes(encode(mnist["test"].images[0].numpy()))
    code, _, err = run_cli(capsys, "predict", str(image), "--number", "1", "--checkpoint", str(bad),
                           "--runtime", "onnx")
    assert code == 1
    assert_one_line_error(err, "digitsum predict: error:", str(bad), "not a valid ONNX model", "digitsum export")


def test_missing_onnx_file_names_it(tmp_path):
    with pytest.raises(OnnxError, match="cannot read ONNX file .*missing.onnx"):
        OnnxBackend(tmp_path / "missing.onnx")


def test_a_graph_with_other_inputs_is_refused(tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(OnnxError, match=r"other.onnx is not a digitsum graph: its inputs are \['x'\]"):
        OnnxBackend(path)


def test_a_graph_with_a_fixed_batch_is_refused(tmp_path, checkpoint):
    path = tmp_path / "fixed.onnx"
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter, used here only for its fixed batch
        torch.onnx.export(checkpoint.model, (torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64)),
                          str(path), dynamo=False, input_names=["image", "number"],
                          output_names=["digit_logits", "sum_logits"])
    with pytest.raises(OnnxError, match="has a fixed batch of 2, expected a dynamic batch axis"):
        OnnxBackend(path)


def test_a_failed_export_leaves_no_file_and_reports_the_figure(tmp_path, checkpoint, mnist):
    target = tmp_path / "noisy.onnx"
    with pytest.raises(ExportError, match=r"disagree on 100 images: max abs difference 0\.\d+ \(limit 0\.0001\)"):
        export_onnx(Noisy(checkpoint.model), target, mnist["test"].images[:100], torch.arange(100) % 10)
    assert list(tmp_path.iterdir()) == []


def test_export_cli_prints_the_parity_figure(capsys, tmp_path, small_run, mnist_dir):
    out_file = tmp_path / "model.onnx"
    code, out, err = run_cli(capsys, "export", "--checkpoint", str(small_run), "--format", "onnx",
                             "--output", str(out_file), "--data-dir", str(mnist_dir), "--check-images", "300")
    assert code == 0, err
    assert f"wrote {out_file}" in out and "300 MNIST test images" in out and "max abs logit difference" in out
    OnnxBackend(out_file)


def test_export_cli_to_a_missing_folder_is_one_clear_line(capsys, tmp_path, small_run, mnist_dir):
    code, _, err = run_cli(capsys, "export", "--checkpoint", str(small_run), "--output",
                           str(tmp_path / "nowhere" / "model.onnx"), "--data-dir", str(mnist_dir))
    assert code == 1
    assert_one_line_error(err, "digitsum export: error:", "nowhere does not exist")
    assert list(tmp_path.iterdir()) == []


def test_inference_benchmark_times_every_variant_and_compares_them(monkeypatch, exported, checkpoint, mnist):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_inference

    images = normalize(mnist["test"].images[:16]).numpy()  # (16, 1, 28, 28)
    backends = bench_inference.variants(checkpoint.model, exported[0], threads=1, compile_=False)
    layouts = {name: backends[name].model.image_branch[1][0].weight for name in ("torch eager", "torch NCHW")}
    assert not layouts["torch eager"].is_contiguous() and layouts["torch NCHW"].is_contiguous()  # a real A/B
    for name, backend in backends.items():  # every variant computes the same network
        digit_logits, *_ = backend(images, np.arange(16) % 10)
        assert (digit_logits.argmax(1) == mnist["test"].labels[:16].numpy()).mean() > 0.8, name
    size = {"rounds": 2, "calls": 3, "batches": 1, "warmup": 1}
    figures = bench_inference.measure(backends, images, np.arange(16) % 10, size)
    assert set(figures) == set(backends)
    for m in figures.values():
        assert 0 < m["p50"] <= m["p99"] and m["images_s"] > 0 and m["images_cpu_s"] > 0
    rows = bench_inference.change_lines({1: figures})
    assert len(rows) == 2 + sum(before in figures and after in figures for _, before, after in bench_inference.CHANGES)


def test_serve_runtime_onnx_answers_like_torch(exported, small_run, mnist):
    from fastapi.testclient import TestClient

    from digitsum.serve import create_app

    forms = [{"image": ("digit.png", encode(mnist["test"].images[i].numpy()), "image/png"), "number": (None, str(i))}
             for i in range(4)]
    answers = {}
    for runtime, path in (("torch", small_run), ("onnx", exported[0])):
        with TestClient(create_app(load_model(path, runtime=runtime))) as client:
            replies = [client.post("/api/predict", files=form) for form in forms]
            assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
            answers[runtime] = [(r.json()["digit"], r.json()["sum"]) for r in replies]
            assert client.get("/api/info").json()["config"]["model"]["arch"] == "default"
    assert answers["onnx"] == answers["torch"]
    assert [d for d, _ in answers["onnx"]] == mnist["test"].labels[:4].tolist()


def test_without_mnist_the_export_checks_on_seeded_random_images(tmp_path, mnist):
    images, numbers, what = check_batch(str(tmp_path), 50)  # an empty folder: nothing read, nothing downloaded
    assert images.shape == (50, 28, 28) and images.dtype == torch.uint8 and numbers.shape == (50,)
    assert what == f"50 seeded random images (no MNIST files in {tmp_path})"
    assert not (images == mnist["test"].images[:50]).all() and list(tmp_path.iterdir()) == []
    again, again_numbers, _ = random_check_batch(50)
    assert torch.equal(images, again) and torch.equal(numbers, again_numbers)  # the same on every machine


def test_only_the_exporters_own_failures_become_export_errors(checkpoint, monkeypatch):
    def cannot(*args, **kwargs):
        raise torch.onnx.OnnxExporterError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", cannot)
    with pytest.raises(ExportError, match="could not export the model to ONNX: unsupported operator"):
        to_onnx(checkpoint.model)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(torch.onnx, "export", bug)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its type and traceback
        to_onnx(checkpoint.model)
