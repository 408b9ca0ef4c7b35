"""digitsum report: figures and a page from a finished run, a run in progress, a checkpoint; one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from digitsum.checkpoint import load_checkpoint
from digitsum.cli import main
from digitsum.data import Split
from digitsum.evaluate import Outputs, evaluate
from digitsum.mixture import NumberMixture
from digitsum.report.figures import FIGURE_FILES
from digitsum.report.page import render_page
from digitsum.report.source import ReportSource, checkpoint_source
from digitsum.report.tables import confident_mistakes, confusion, model_tables
from helpers import assert_one_line_error, run_cli


def assert_readable_pngs(folder, names) -> None:
    for name in names:
        with Image.open(folder / name) as image:
            assert image.format == "PNG", name
            width, height = image.size
        assert 400 <= width <= 3000 and 400 <= height <= 3000, (name, image.size)


def partial_run(small_run, folder, with_model: bool = False):
    """A copy of small_run as it stood after its first epoch."""
    folder.mkdir()
    shutil.copy(small_run / "config.json", folder)
    first = (small_run / "metrics.jsonl").read_text().splitlines()[0]
    (folder / "metrics.jsonl").write_text(first + "\n")
    if with_model:
        shutil.copy(small_run / "model.safetensors", folder)
    return folder


@pytest.fixture(scope="module")
def full_report(small_run, mnist_dir, tmp_path_factory):
    """``digitsum report --checkpoint`` (no PATH: the bundled model) with the small real run as the bundle,
    written to the default ./report: (exit code, report folder)."""
    bundle, cwd = tmp_path_factory.mktemp("weights"), tmp_path_factory.mktemp("cwd")
    for name in ("model.safetensors", "config.json", "metrics.json", "metrics.jsonl"):
        shutil.copy(small_run / name, bundle)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("digitsum.checkpoint.bundled_path", lambda: bundle)
        patch.chdir(cwd)
        code = main(["report", "--checkpoint", "--data-dir", str(mnist_dir)])
    return code, cwd / "report"


def test_bundled_model_gets_every_figure_as_a_readable_png(full_report):
    code, out = full_report
    assert code == 0
    assert_readable_pngs(out, FIGURE_FILES)  # curves too: a metrics.jsonl lies in the bundle


def test_page_references_every_figure_and_shows_the_test_metrics(full_report, small_run):
    _, out = full_report
    page = (out / "report.html").read_text()
    for name in FIGURE_FILES:
        assert f'src="{name}"' in page
    metrics = json.loads((small_run / "metrics.json").read_text())
    for key in ("digit_accuracy", "sum_accuracy", "all_pairs_sum_accuracy", "consistency"):
        assert f"<th>{key}</th><td>{100 * metrics[key]:.2f}%</td>" in page
    assert "still training" not in page and "the bundled model" in page
    assert "<th>train.lr</th>" in page  # the config, flattened


def test_tables_agree_with_evaluate(small_run, mnist):
    model = load_checkpoint(small_run).model
    test = Split(mnist["test"].images[:600], mnist["test"].labels[:600])
    tables = model_tables(model, test, samples=5, mistakes=4)
    summary, expected = tables.summary(), evaluate(model, test)
    for key in ("n", "digit_accuracy", "sum_accuracy", "all_pairs_sum_accuracy"):
        assert summary[key] == pytest.approx(expected[key], abs=1e-6), key
    assert tables.digit_confusion.shape == (10, 10) and tables.sum_confusion.shape == (19, 19)
    assert len(tables.samples) == 5 and [s.digit for s in tables.samples] == test.labels[:5].tolist()
    assert 0 < len(tables.mistakes) <= 4 and not any(s.correct for s in tables.mistakes)


def test_confusion_counts_each_truth_prediction_pair():
    truth, predicted = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0])
    assert confusion(truth, predicted, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_mistakes_are_ranked_by_confidence_in_the_wrong_answer():
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    mixture = NumberMixture(images, torch.tensor([1, 1, 1, 1]), torch.tensor([0, 0, 0, 0]))
    digit = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05]])  # item 1: 60% wrong, 3: 95% wrong
    total = torch.tensor([[0.1, 0.9], [0.1, 0.9], [0.7, 0.3], [0.1, 0.9]])  # item 2: sum 70% wrong
    out = Outputs(torch.nn.functional.pad(digit, (0, 8)), torch.nn.functional.pad(total, (0, 17)))
    assert confident_mistakes(out, mixture, 10).tolist() == [3, 2, 1]
    assert confident_mistakes(out, mixture, 2).tolist() == [3, 2]


@pytest.mark.parametrize("with_model", [False, True], ids=["no-model-yet", "model-but-no-metrics"])
def test_run_in_progress_gets_curves_only(capsys, small_run, tmp_path, with_model):
    run = partial_run(small_run, tmp_path / "run", with_model)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "digit_confusion.png").write_bytes(b"from an earlier report")
    code, out, err = run_cli(capsys, "report", run, "--output", tmp_path / "out")
    assert code == 0, err
    assert "in progress" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curves.png", "report.html"]
    assert_readable_pngs(tmp_path / "out", ["curves.png"])
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'src="curves.png"' in page and "still training" in page and "1 of 3 epochs so far" in page


def test_report_goes_into_the_run_directory_by_default(capsys, small_run, tmp_path):
    run = partial_run(small_run, tmp_path / "run")
    code, out, _ = run_cli(capsys, "report", run)
    assert code == 0
    assert (run / "report" / "report.html").is_file() and str(run / "report" / "report.html") in out


@pytest.mark.parametrize(("setup", "fragment"), [
    (lambda run: None, "nothing to report"),
    (lambda run: (run / "config.json").write_text("{}"), "nothing to report"),
    (lambda run: (run / "metrics.jsonl").write_text('{"epoch": 1}\n'), "lacks train_loss"),
    (lambda run: (run / "metrics.jsonl").write_text("{not json\n"), "line 1 is not valid JSON"),
])
def test_unusable_run_directory_is_one_line_error(capsys, tmp_path, setup, fragment):
    run = tmp_path / "run"
    run.mkdir()
    setup(run)
    code, _, err = run_cli(capsys, "report", run, "--output", tmp_path / "out")
    assert code == 1
    assert_one_line_error(err, "digitsum report: error:", fragment)
    assert not (tmp_path / "out").exists()


def test_missing_run_directory_is_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", tmp_path / "nowhere")
    assert code == 1
    assert_one_line_error(err, "not found")


def test_missing_test_data_writes_nothing(capsys, small_run, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITSUM_MIRRORS", (tmp_path / "no-mirror").as_uri())
    code, _, err = run_cli(capsys, "report", small_run, "--output", tmp_path / "out",
                           "--data-dir", tmp_path / "no-data")
    assert code == 1
    assert_one_line_error(err, "MNIST files missing")
    assert not (tmp_path / "out").exists()


def test_run_dir_and_checkpoint_are_exclusive_and_one_is_required(capsys, small_run):
    assert run_cli(capsys, "report")[0] == 2
    code, _, err = run_cli(capsys, "report", small_run, "--checkpoint", small_run)
    assert code == 2
    assert_one_line_error(err, "not allowed with")


def test_checkpoint_without_history_has_no_curves_and_says_so(small_run, tmp_path):
    for name in ("model.safetensors", "config.json"):
        shutil.copy(small_run / name, tmp_path)
    source = checkpoint_source(tmp_path / "model.safetensors")
    assert source.history == [] and source.metrics == {} and source.model is not None
    assert "No per-epoch history" in render_page(source, None, [])


def test_page_escapes_the_run_config():
    source = ReportSource("<b>run</b>", {"note": "<script>alert(1)</script>"}, {}, [], None)
    page = render_page(source, None, [])
    assert "<script>" not in page and "<b>run" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_train_report_writes_a_full_report_at_the_end(capsys, mnist_dir, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--data-dir", mnist_dir, "--limit", 1000, "--epochs", 1,
                             "--val-size", 500, "--batch-size", 64, "--threads", 1, "--out", run, "--report")
    assert code == 0, err
    assert f"report written to {run / 'report' / 'report.html'}" in out
    assert_readable_pngs(run / "report", FIGURE_FILES)
    page = (run / "report" / "report.html").read_text()
    assert all(f'src="{name}"' in page for name in FIGURE_FILES)


def test_equally_confident_mistakes_come_in_the_order_of_the_test_items():
    n = 40  # more items than a sort needs to change their order if it were not stable
    mixture = NumberMixture(torch.zeros(n, 28, 28, dtype=torch.uint8), torch.ones(n, dtype=torch.long),
                            torch.zeros(n, dtype=torch.long))
    digit = torch.tensor([[0.8, 0.2]] * n)  # every item read as 0 at 80%
    total = torch.tensor([[0.1, 0.9]] * n)  # every sum right
    out = Outputs(torch.nn.functional.pad(digit, (0, 8)), torch.nn.functional.pad(total, (0, 17)))
    assert confident_mistakes(out, mixture, n).tolist() == list(range(n))
