"""The walkthrough notebook runs top to bottom on a fresh kernel against real MNIST, as committed."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import load_script

REPO = Path(__file__).resolve().parents[1]


def run_notebook_module():
    return load_script(REPO / "scripts" / "run_notebook.py")


def test_the_walkthrough_runs_on_a_fresh_kernel_and_shows_its_figures(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("DIGITSUM_DATA", str(mnist_dir))
    runner = run_notebook_module()
    out = tmp_path / "walkthrough.ipynb"
    assert runner.main([str(runner.NOTEBOOK), "--output", str(out)]) == 0  # a failing cell would make this 1
    cells = json.loads(out.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code)
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    images = sum("image/png" in o.get("data", {}) for c in code for o in c["outputs"])
    assert images >= 5  # samples, curves, fusion, heat map, drawing: all drawn
    text = "".join("".join(o.get("text", "")) for c in code for o in c["outputs"])
    assert "onnxruntime: digit 7" in text and "digit 7" in text


def test_the_committed_notebook_holds_its_outputs():
    cells = json.loads(run_notebook_module().NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code)  # executed, in order, by scripts/run_notebook.py
    assert sum("image/png" in o.get("data", {}) for c in code for o in c["outputs"]) >= 5
