"""``digitsum predict``: one image or a CSV manifest, plain or JSON, and one clear line for every bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from digitsum import checkpoint as checkpoint_module
from digitsum import predict as predict_module
from helpers import assert_one_line_error, encode, png_header, run_cli

RESULT_KEYS = ["image", "number", "digit", "sum", "digit_probability", "sum_probability", "is_digit",
               "is_digit_score"]
LINE = re.compile(r"^(\S+) \+ (\d): digit (\d) \((\d+\.\d)%\), sum (\d+) \((\d+\.\d)%\)$")


def assert_predict_error(err: str, *fragments: str) -> None:
    assert_one_line_error(err, "digitsum predict: error: ", *fragments)


@pytest.fixture
def seven(mnist, tmp_path):
    """MNIST test image 0 (a 7), dark on white at 5x, as a PNG file."""
    path = tmp_path / "seven.png"
    path.write_bytes(encode(255 - np.asarray(Image.fromarray(mnist["test"].images[0].numpy()).resize((140, 140)))))
    return path


@pytest.fixture
def bad_images(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (file name in tmp_path, what the error says)."""
    whole = encode(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))
    files = {"empty.png": b"", "text.png": b"image,number\n", "truncated.png": whole[: len(whole) // 2],
             "blank.png": encode(np.full((100, 100), 255, np.uint8)), "huge.png": png_header(30000, 30000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {"missing": ("missing.png", "not found"), "empty": ("empty.png", "is empty"),
            "not an image": ("text.png", "is not an image"), "truncated": ("truncated.png", "truncated or corrupt"),
            "blank": ("blank.png", "no ink"), "huge": ("huge.png", "more than the 40 megapixels")}


# -- one image

def test_predict_prints_the_digit_and_the_sum_with_probabilities(capsys, small_run, seven):
    code, out, err = run_cli(capsys, "predict", seven, "--number", "4", "--checkpoint", small_run)
    assert code == 0 and err == ""
    match = LINE.match(out.strip())
    assert match and match.group(1) == str(seven) and match.groups()[1:3] == ("4", "7") and match.group(5) == "11"


def test_predict_json_is_one_object_with_the_documented_fields(capsys, small_run, seven):
    code, out, _ = run_cli(capsys, "predict", seven, "--number", "2", "--checkpoint", small_run, "--json")
    result = json.loads(out)
    assert code == 0 and list(result) == RESULT_KEYS
    assert (result["image"], result["number"], result["digit"], result["sum"]) == (str(seven), 2, 7, 9)
    assert 0.5 < result["digit_probability"] <= 1 and 0.5 < result["sum_probability"] <= 1


def test_predict_without_checkpoint_uses_the_bundled_model(capsys, monkeypatch, small_run, seven):
    monkeypatch.setattr(checkpoint_module, "bundled_path", lambda: small_run)
    code, out, _ = run_cli(capsys, "predict", seven, "--number", "1", "--json")
    assert code == 0 and json.loads(out)["sum"] == 8


@pytest.mark.parametrize("case", ["missing", "empty", "not an image", "truncated", "blank", "huge"])
def test_a_bad_image_is_one_line_and_exit_1(capsys, small_run, tmp_path, bad_images, case):
    name, fragment = bad_images[case]
    code, out, err = run_cli(capsys, "predict", tmp_path / name, "--number", "3", "--checkpoint", small_run)
    assert code == 1 and out == ""
    assert_predict_error(err, fragment, name)


@pytest.mark.parametrize("number", ["10", "-1", "7.5", "x", ""])
def test_a_bad_number_is_one_line_and_exit_2(capsys, small_run, seven, number):
    code, out, err = run_cli(capsys, "predict", seven, "--number", number, "--checkpoint", small_run)
    assert code == 2 and out == ""
    assert_predict_error(err, f"number must be an integer 0-9, got {number!r}")


def test_a_missing_or_corrupt_checkpoint_is_one_line_and_exit_1(capsys, small_run, seven, tmp_path):
    code, _, err = run_cli(capsys, "predict", seven, "--number", "3", "--checkpoint", tmp_path / "nowhere")
    assert code == 1
    assert_predict_error(err, "checkpoint", "not found")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(small_run, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 100)
    code, _, err = run_cli(capsys, "predict", seven, "--number", "3", "--checkpoint", corrupt)
    assert code == 1
    assert_predict_error(err, "corrupt")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--number", "3"], "give an IMAGE and --number N"),
    (["seven.png"], "give an IMAGE and --number N"),
    (["seven.png", "--number", "3", "--manifest", "m.csv"], "not both"),
    (["seven.png", "--number", "3", "--runtime", "tpu"], "invalid choice: 'tpu'"),
])
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, fragment):
    code, out, err = run_cli(capsys, "predict", *argv)
    assert code == 2 and out == ""
    assert_predict_error(err, fragment)


def test_the_console_script_reports_a_bad_image_without_a_traceback(tmp_path, small_run):
    result = subprocess.run(["digitsum", "predict", tmp_path / "nope.png", "--number", "3", "--checkpoint", small_run],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"digitsum predict: error: image {tmp_path / 'nope.png'} not found\n"


# -- a manifest

def test_a_manifest_with_bad_rows_predicts_the_good_ones_and_exits_1(capsys, small_run, seven, tmp_path, bad_images):
    rows = [("seven.png", "3"), (str(seven), "0")]  # relative, then absolute
    rows += [(name, "3") for name, _ in bad_images.values()]
    rows += [("seven.png", n) for n in ("10", "-1", "7.5", "x", "")] + [("", "3"), ("seven.png", "9")]
    manifest = tmp_path / "m.csv"
    manifest.write_text("note,image,number\n" + "".join(f"row{i},{image},{n}\n" for i, (image, n) in enumerate(rows)))
    code, out, err = run_cli(capsys, "predict", "--manifest", manifest, "--checkpoint", small_run, "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(results) == len(rows)
    assert [r["image"] for r in results] == [image for image, _ in rows]
    good = [results[i] for i in (0, 1, len(rows) - 1)]
    assert [(r["digit"], r["sum"]) for r in good] == [(7, 10), (7, 7), (7, 16)] and list(good[0]) == RESULT_KEYS
    failed = results[2:-1]
    assert all(list(r) == ["image", "number", "error"] for r in failed)
    expected = [fragment for _, fragment in bad_images.values()] + ["number must be an integer 0-9"] * 5
    for r, fragment in zip(failed, [*expected, "no image path"], strict=True):
        assert fragment in r["error"], r
    assert [r["number"] for r in failed[-6:-1]] == [10, -1, "7.5", "x", ""]
    assert_predict_error(err, f"{len(failed)} of {len(rows)} rows failed")


def test_a_clean_manifest_prints_one_line_per_row_and_exits_0(capsys, small_run, seven, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("\ufeffimage, number\n" + "".join(f"seven.png, {n}\n" for n in range(10)))  # Excel's BOM
    code, out, err = run_cli(capsys, "predict", "--manifest", manifest, "--checkpoint", small_run)
    lines = out.splitlines()
    assert code == 0 and err == "" and len(lines) == 10
    assert [LINE.match(line).group(5) for line in lines] == [str(7 + n) for n in range(10)]


def test_a_manifest_loads_the_model_once_and_predicts_in_batches(capsys, monkeypatch, small_run, mnist, tmp_path):
    for i in range(10):
        (tmp_path / f"{i}.png").write_bytes(encode(mnist["test"].images[i].numpy()))
    (tmp_path / "m.csv").write_text("image,number\n" + "".join(f"{i % 10}.png,{i % 7}\n" for i in range(300)))
    loads, calls = [], []
    real_load, real_call = predict_module.load_checkpoint, predict_module.TorchBackend.__call__
    monkeypatch.setattr(predict_module, "load_checkpoint", lambda *a: loads.append(a) or real_load(*a))
    monkeypatch.setattr(predict_module.TorchBackend, "__call__",
                        lambda self, x, n: calls.append(len(n)) or real_call(self, x, n))
    code, out, _ = run_cli(capsys, "predict", "--manifest", tmp_path / "m.csv", "--checkpoint", small_run, "--json")
    assert code == 0 and len(out.splitlines()) == 300
    assert len(loads) == 1 and calls == [256, 44]


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "not found"),
    ("picture,digit\na.png,3\n", "needs a header with the columns image,number (missing: image, number"),
    ("image\na.png\n", "(missing: number; found: image)"),
    ("", "(missing: image, number; found: nothing)"),
])
def test_an_unreadable_manifest_is_one_line_and_exit_1(capsys, small_run, tmp_path, content, fragment):
    manifest = tmp_path / "m.csv"
    if content is not None:
        manifest.write_text(content)
    code, out, err = run_cli(capsys, "predict", "--manifest", manifest, "--checkpoint", small_run, "--json")
    assert code == 1 and out == ""
    assert_predict_error(err, fragment, str(manifest))
