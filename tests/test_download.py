"""The downloader, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import os
import threading
from pathlib import Path

import pytest

from digitsum.data import DataError, ensure_mnist, load_split

NAME = "t10k-labels-idx1-ubyte"  # the smallest file: the one the tests leave missing


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves /<behaviour>/<file>: good, missing (404), wrong (bad digest), short (truncated)."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self):
        Handler.requests.append(self.path)
        behaviour, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if behaviour == "missing" or body is None:
            self.send_error(404)
            return
        if behaviour == "wrong":
            raw = bytearray(gzip.decompress(body))
            raw[50] = (raw[50] + 1) % 10
            body = gzip.compress(bytes(raw))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if behaviour == "short" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(mnist_dir):
    Handler.files = {p.name: p.read_bytes() for p in mnist_dir.glob("*.gz")}
    Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def folder(mnist_dir, tmp_path) -> Path:
    """A data folder holding every MNIST file but the test labels."""
    for other in ("t10k-images-idx3-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / f"{other}.gz").symlink_to((mnist_dir / f"{other}.gz").resolve())
    return tmp_path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_falls_back_to_the_next_mirror(server, folder, mnist):
    ensure_mnist(folder, (f"{server}/missing/", f"{server}/good/"))
    assert load_split(folder, "test").labels.tolist() == mnist["test"].labels.tolist()
    assert Handler.requests == [f"/missing/{NAME}.gz", f"/good/{NAME}.gz"]
    assert leftovers(folder) == []
    umask = os.umask(0)
    os.umask(umask)
    assert (folder / f"{NAME}.gz").stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file, not 0600


def test_wrong_digest_moves_on_and_leaves_nothing(server, folder):
    ensure_mnist(folder, (f"{server}/wrong/", f"{server}/good/"))
    assert Handler.requests == [f"/wrong/{NAME}.gz", f"/good/{NAME}.gz"]
    assert load_split(folder, "test").labels.shape == (10000,)
    assert leftovers(folder) == []


def test_truncated_transfer_moves_on(server, folder):
    ensure_mnist(folder, (f"{server}/short/", f"{server}/good/"))
    assert Handler.requests == [f"/short/{NAME}.gz", f"/good/{NAME}.gz"]
    assert (folder / f"{NAME}.gz").is_file()


def test_every_mirror_failing_names_files_and_folder(server, folder):
    mirrors = (f"{server}/missing/", f"{server}/wrong/", f"{server}/short/")
    with pytest.raises(DataError) as error:
        ensure_mnist(folder, mirrors)
    message = str(error.value)
    assert NAME in message and str(folder) in message and "\n" not in message
    assert not (folder / f"{NAME}.gz").exists() and not (folder / NAME).exists()
    assert leftovers(folder) == []


def test_no_network_when_files_are_present(server, mnist_dir):
    ensure_mnist(mnist_dir, (f"{server}/good/",))
    assert Handler.requests == []


def test_downloads_every_file_into_a_new_folder(server, tmp_path, mnist):
    target = tmp_path / "new" / "cache"
    ensure_mnist(target, (f"{server}/good/",))
    assert sorted(p.name for p in target.iterdir()) == sorted(Handler.files)
    assert load_split(target, "test").labels.tolist() == mnist["test"].labels.tolist()
