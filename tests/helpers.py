"""Helpers the tests share: running the CLI in-process, checking one-line errors, writing image files."""

from __future__ import annotations

import io
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from digitsum.cli import main


def load_script(path: Path):
    """A Python file that is not in a package (a benchmark, a script) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``digitsum *argv`` run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    """stderr is exactly one line, no traceback, holding every fragment."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """An image (PIL, or a uint8 array) as the bytes of a ``fmt`` file."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that declares width x height greyscale pixels but holds only a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@contextmanager
def serving(checkpoint, log: Path, *flags: str, pids: list | None = None) -> Iterator[str]:
    """``python -m digitsum serve --port 0`` in its own process: yields its base URL once /healthz answers,
    then stops it with Ctrl-C (SIGINT) and checks that it stopped cleanly. The process's pid goes into ``pids``."""
    with log.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "digitsum", "serve", "--checkpoint", str(checkpoint),
                                    "--port", "0", *flags], stdout=subprocess.PIPE, stderr=log_file, text=True)
        if pids is not None:
            pids.append(process.pid)
        try:
            line = process.stdout.readline()  # "digitsum serve: http://127.0.0.1:PORT/ (Ctrl-C to stop)"
            assert "http://" in line, f"digitsum serve did not start: {log.read_text()}"
            url = line.split()[2]
            deadline = time.monotonic() + 120  # a limit on waiting, not a measurement
            while True:
                try:
                    if httpx.get(url + "healthz", timeout=5).json() == {"status": "ok"}:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "the server never answered /healthz"
                time.sleep(0.1)
            yield url
        finally:
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
    stderr = log.read_text()
    assert code == 0 and "digitsum serve: stopped" in stderr, f"no clean stop on Ctrl-C (exit {code}): {stderr}"
