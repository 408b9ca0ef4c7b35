"""The pretrained model shipped in the package: present, small, and as good as README says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from digitsum.checkpoint import bundled_path, load_checkpoint
from digitsum.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("digit_accuracy", "sum_accuracy", "all_pairs_sum_accuracy", "consistency")


@pytest.fixture(scope="module")
def bundled_metrics(mnist) -> dict:
    return evaluate(load_checkpoint().model, mnist["test"])


def readme_figures() -> list[float]:
    """The percentages on README's 'digitsum, bundled model' row of the results table."""
    row = next(line for line in (REPO / "README.md").read_text().splitlines()
               if line.startswith("| digitsum, bundled model"))
    return [float(x) for x in re.findall(r"(\d+\.\d+)%", row)]


def test_bundle_is_safetensors_and_json_of_a_few_hundred_kb():
    folder = bundled_path()
    assert {"model.safetensors", "config.json", "metrics.json"} <= {p.name for p in folder.iterdir()}
    assert (folder / "model.safetensors").stat().st_size < 600_000
    assert json.loads((folder / "config.json").read_text())["model"]["arch"] == "default"


def test_bundled_model_meets_the_targets(bundled_metrics):
    assert bundled_metrics["digit_accuracy"] >= 0.995
    assert bundled_metrics["sum_accuracy"] >= 0.995
    assert bundled_metrics["all_pairs_sum_accuracy"] >= 0.995
    assert bundled_metrics["consistency"] >= 0.998  # the agreement term keeps sums and digits consistent


def test_bundled_figures_are_the_ones_shipped_and_in_readme(bundled_metrics):
    shipped = json.loads((bundled_path() / "metrics.json").read_text())
    assert all(shipped[k] == bundled_metrics[k] for k in FIGURES)
    assert readme_figures() == [round(100 * bundled_metrics[k], 2) for k in FIGURES]
