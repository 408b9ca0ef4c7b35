"""A minimal install: every sub-command whose extra is not installed says, in one line, which
``pip install 'digitsum[...]'`` brings it, and exits 1 before doing any work."""

from __future__ import annotations

import sys

import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli

CASES = [  # (command line, the module hidden, the extra named)
    (["serve", "--port", "0"], "uvicorn", "serve"),
    (["serve", "--port", "0"], "fastapi", "serve"),
    (["serve", "--port", "0"], "python_multipart", "serve"),
    (["report", "--checkpoint", "--output", "{tmp}/report", "--data-dir", "{data}"], "matplotlib", "report"),
    (["train", "--report", "--out", "{tmp}/run", "--epochs", "1", "--data-dir", "{data}"], "matplotlib", "report"),
    (["export", "--output", "{tmp}/model.onnx"], "onnx", "onnx"),
    (["export", "--output", "{tmp}/model.onnx"], "onnxscript", "onnx"),
    (["export", "--output", "{tmp}/model.onnx"], "onnxruntime", "onnx"),
    (["predict", "{image}", "--number", "3", "--runtime", "onnx"], "onnxruntime", "onnx"),
    (["serve", "--port", "0", "--runtime", "onnx"], "onnxruntime", "onnx"),
]


@pytest.mark.parametrize(("argv", "hidden", "extra"), CASES, ids=[f"{c[0][0]}-{c[1]}" for c in CASES])
def test_a_missing_extra_is_one_line_naming_it(capsys, monkeypatch, tmp_path, argv, hidden, extra, mnist, mnist_dir):
    monkeypatch.setitem(sys.modules, hidden, None)  # what a missing package looks like to import
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached ONNX export to fall back on
    image = tmp_path / "digit.png"
    Image.fromarray(mnist["test"].images[0].numpy()).save(image)
    argv = [a.format(tmp=tmp_path, image=image, data=mnist_dir) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert_one_line_error(err, f"needs {hidden}", f"pip install 'digitsum[{extra}]'")
    assert not (tmp_path / "run").exists() and not (tmp_path / "report").exists()
    assert not (tmp_path / "model.onnx").exists()
