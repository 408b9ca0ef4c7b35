"""Progress on long work: a tqdm bar on a terminal (stderr a tty), nothing extra when piped or with --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from PIL import Image

TRAIN = ["train", "--limit", "1000", "--epochs", "1", "--val-size", "500", "--threads", "1", "--negatives", "0"]


def run(argv: list, tmp_path, terminal: bool) -> tuple[int, str, str]:
    """(exit status, stderr, stdout) of ``python -m digitsum ARGV``, its stderr a terminal or a pipe."""
    command = [sys.executable, "-m", "digitsum", *map(str, argv)]
    if not terminal:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
        return result.returncode, result.stderr, result.stdout
    controller, terminal_end = pty.openpty()
    fcntl.ioctl(terminal_end, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal_end, text=True, cwd=tmp_path)
    os.close(terminal_end)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    stdout, _ = process.communicate(timeout=300)
    os.close(controller)
    return process.returncode, b"".join(chunks).decode(errors="replace"), stdout


def test_training_shows_a_bar_on_a_terminal_and_keeps_its_lines(tmp_path, mnist_dir):
    code, err, out = run([*TRAIN, "--data-dir", mnist_dir, "--out", tmp_path / "run"], tmp_path, terminal=True)
    assert code == 0, err
    assert "epoch 1/1" in err and "images/s" in err and "loss" in err and "step" in err  # the bar
    assert out.count("epoch  1/1  loss") == 1 and "run written to" in out  # the lines, unchanged


def test_no_bar_when_piped_or_quiet(tmp_path, mnist_dir):
    code, err, out = run([*TRAIN, "--data-dir", mnist_dir, "--out", tmp_path / "a"], tmp_path, terminal=False)
    assert code == 0 and "images/s" not in err and err.strip() == ""
    assert out.count("epoch  1/1  loss") == 1
    code, err, _ = run([*TRAIN, "--data-dir", mnist_dir, "--out", tmp_path / "b", "--quiet"], tmp_path, terminal=True)
    assert code == 0 and "images/s" not in err


def test_a_manifest_shows_a_bar_on_a_terminal(tmp_path, mnist, small_run):
    for i in range(40):
        Image.fromarray(mnist["test"].images[i].numpy()).save(tmp_path / f"{i}.png")
    rows = "".join(f"{i}.png,{int(mnist['test'].labels[i])}\n" for i in range(40))
    (tmp_path / "labels.csv").write_text("image,digit\n" + rows)
    code, err, out = run(["evaluate", "--manifest", "labels.csv", "--checkpoint", small_run], tmp_path, terminal=True)
    assert code == 0 and "evaluate" in err and "0/40" in err and "(n=40)" in out  # the bar, drawn at its start
    (tmp_path / "numbers.csv").write_text("image,number\n" + "".join(f"{i}.png,3\n" for i in range(40)))
    code, err, out = run(["predict", "--manifest", "numbers.csv", "--checkpoint", small_run], tmp_path,
                         terminal=False)
    assert code == 0 and err == "" and len(out.splitlines()) == 40  # piped: one line per row, nothing else
