"""MNIST files: IDX parsing, digests, locating the data folder."""

from __future__ import annotations

import gzip
import shutil

import pytest

from digitsum.data import (
    DIGESTS,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    DataError,
    load_file,
    load_mnist,
    load_split,
    parse_idx,
    resolve_data_dir,
)


def idx_images(count: int, rows: int = 28, cols: int = 28, magic: int = IMAGE_MAGIC) -> bytes:
    header = b"".join(v.to_bytes(4, "big") for v in (magic, count, rows, cols))
    return header + bytes(range(256)) * (count * rows * cols // 256) + bytes(count * rows * cols % 256)


def idx_labels(count: int) -> bytes:
    return LABEL_MAGIC.to_bytes(4, "big") + count.to_bytes(4, "big") + bytes(i % 10 for i in range(count))


def test_valid_images_parse_to_uint8_array():
    array = parse_idx(idx_images(3), "x", IMAGE_MAGIC, 3)
    assert array.shape == (3, 28, 28) and array.dtype.name == "uint8"
    assert array[0, 0, :4].tolist() == [0, 1, 2, 3]


def test_valid_labels_parse():
    assert parse_idx(idx_labels(12), "x", LABEL_MAGIC, 12).tolist() == [i % 10 for i in range(12)]


def test_bad_magic_is_named():
    with pytest.raises(DataError, match=r"bad magic number 0x00000801, expected 0x00000803"):
        parse_idx(idx_images(2, magic=LABEL_MAGIC), "file.idx", IMAGE_MAGIC, 2)


def test_wrong_dimensions_are_named():
    with pytest.raises(DataError, match=r"dimensions \[2, 32, 28\], expected \[2, 28, 28\]"):
        parse_idx(idx_images(2, rows=32), "file.idx", IMAGE_MAGIC, 2)


def test_wrong_count_is_named():
    with pytest.raises(DataError, match=r"dimensions \[5, 28, 28\], expected \[4, 28, 28\]"):
        parse_idx(idx_images(5), "f", IMAGE_MAGIC, 4)


def test_truncated_data_is_named():
    with pytest.raises(DataError, match="truncated or padded"):
        parse_idx(idx_images(2)[:-10], "file.idx", IMAGE_MAGIC, 2)


def test_truncated_header_is_named():
    with pytest.raises(DataError, match="too short for an IDX header"):
        parse_idx(b"\x00\x00\x08", "file.idx", IMAGE_MAGIC, 2)


def test_real_files_verify_and_parse(mnist):
    assert mnist["train"].images.shape == (60000, 28, 28)
    assert mnist["test"].images.shape == (10000, 28, 28)
    assert mnist["test"].labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's well-known first ten


def test_only_the_splits_asked_for_are_loaded(mnist_dir, mnist):
    test_only = load_mnist(mnist_dir, download=False, splits=("test",))
    assert list(test_only) == ["test"] and test_only["test"].labels.tolist() == mnist["test"].labels.tolist()


def test_raw_files_load_like_gzip(mnist_dir, tmp_path, mnist):
    name = "t10k-labels-idx1-ubyte"
    (tmp_path / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    assert load_file(tmp_path, name).tolist() == mnist["test"].labels.tolist()


def test_digest_mismatch_names_the_file(mnist_dir, tmp_path):
    name = "t10k-labels-idx1-ubyte"
    content = bytearray(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    content[100] = (content[100] + 1) % 10  # still a valid IDX file, different content
    (tmp_path / name).write_bytes(bytes(content))
    with pytest.raises(DataError, match=rf"{name}: SHA-256 .* expected {DIGESTS[name][:12]}"):
        load_file(tmp_path, name)


def test_truncated_gzip_is_named(mnist_dir, tmp_path):
    name = "t10k-labels-idx1-ubyte"
    (tmp_path / f"{name}.gz").write_bytes((mnist_dir / f"{name}.gz").read_bytes()[:2000])
    with pytest.raises(DataError, match=rf"{name}.gz: corrupt or truncated gzip"):
        load_file(tmp_path, name)


def test_missing_file_is_named(mnist_dir, tmp_path):
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_split(tmp_path, "test")


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITSUM_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("DIGITSUM_DATA")
    assert resolve_data_dir() == tmp_path / "cache" / "digitsum" / "mnist"
