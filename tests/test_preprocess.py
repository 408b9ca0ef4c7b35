"""Preprocessing: people's images become MNIST-style digits, and bad images are refused clearly."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from digitsum.preprocess import ImageError, decode, open_image, resample, to_mnist
from digitsum.preprocess import digit as digit_module
from digitsum.preprocess.digit import is_mnist_style
from digitsum.preprocess.ink import median
from digitsum.preprocess.pixels import grey_alpha
from digitsum.preprocess.strokes import stroke_width
from helpers import encode, load_script, png_header

REPO = Path(__file__).resolve().parents[1]


def drawn(digit: np.ndarray, scale: int = 12, canvas: tuple[int, int] = (500, 420), at: tuple[int, int] = (30, 60)):
    """An MNIST digit as ink coverage (H, W) float 0-1 on a large canvas, off-centre."""
    big = np.asarray(Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)) / 255
    out = np.zeros((canvas[1], canvas[0]))
    out[at[1] : at[1] + 28 * scale, at[0] : at[0] + 28 * scale] = big
    return out


def dark_on_white(coverage: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(255 * (1 - coverage)).astype(np.uint8)).convert("RGB")


def centre_of_mass(x: np.ndarray) -> tuple[float, float]:
    x = x.astype(np.float64)
    return float((x.sum(1) * np.arange(28)).sum() / x.sum()), float((x.sum(0) * np.arange(28)).sum() / x.sum())


def bbox_side(x: np.ndarray) -> int:
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    return max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1


# -- MNIST images stay MNIST images

def test_an_mnist_png_comes_back_unchanged(mnist):
    for digit in mnist["test"].images[:300].numpy():
        assert np.array_equal(to_mnist(open_image(encode(Image.fromarray(digit)))), digit)


def test_an_mnist_digit_in_any_grey_opaque_mode_is_used_as_is_and_a_tinted_or_translucent_one_is_not(mnist):
    for digit in mnist["test"].images[:50].numpy():
        grey = Image.fromarray(digit)
        for mode in ("L", "LA", "RGB", "RGBA", "P"):
            assert is_mnist_style(grey.convert(mode)) and np.array_equal(to_mnist(grey.convert(mode)), digit), mode
        tinted = np.stack([digit, digit, digit // 2], axis=-1)
        translucent = np.dstack([np.stack([digit] * 3, axis=-1), np.full((28, 28), 200, np.uint8)])
        assert not is_mnist_style(Image.fromarray(tinted)) and not is_mnist_style(Image.fromarray(translucent))
        assert not is_mnist_style(Image.fromarray(255 - digit))  # dark on light


def test_mnist_digits_redrawn_large_come_back_as_mnist_would_make_them(mnist):
    digits = mnist["test"].images[:100].numpy()
    out = np.stack([to_mnist(dark_on_white(drawn(d))) for d in digits])
    assert all(bbox_side(x) in (19, 20, 21) for x in out)
    com = np.array([centre_of_mass(x) for x in out])
    assert np.abs(com - 14).max() <= 0.75
    assert np.abs(out.astype(int) - digits).mean() < 12  # the same digits, pixel for pixel nearly


# -- what counts as ink

def test_dark_on_light_is_inverted_to_light_on_black(mnist):
    out = to_mnist(dark_on_white(drawn(mnist["test"].images[0].numpy())))
    assert out[0].max() == 0 and out[:, 0].max() == 0 and out.max() == 255


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255)])
def test_strokes_on_a_transparent_canvas_read_like_ink_on_paper(mnist, colour):
    coverage = drawn(mnist["test"].images[1].numpy())
    rgba = np.zeros((*coverage.shape, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.round(255 * coverage)
    expected = to_mnist(dark_on_white(coverage))
    assert np.abs(to_mnist(open_image(encode(Image.fromarray(rgba)))).astype(int) - expected).max() <= 2


def test_an_opaque_rgba_image_reads_exactly_as_its_greyscale_and_a_translucent_pixel_keeps_its_alpha(mnist):
    grey = np.round(255 * (1 - drawn(mnist["test"].images[3].numpy()))).astype(np.uint8)  # dark on white
    rgba = np.asarray(Image.fromarray(grey).convert("RGBA")).copy()
    assert np.array_equal(to_mnist(Image.fromarray(rgba)), to_mnist(Image.fromarray(grey)))
    assert grey_alpha(Image.fromarray(rgba))[1] is None
    rgba[0, 0, 3] = 254  # one pixel not quite opaque: the alpha plane is kept, to be flattened
    alpha = grey_alpha(Image.fromarray(rgba))[1]
    assert alpha is not None and alpha[0, 0] == np.float32(254) / 255 and (alpha[1:] == 1).all()


def test_uneven_lighting_is_removed(mnist):
    coverage = drawn(mnist["test"].images[2].numpy())
    h, w = coverage.shape
    light = 150 + 90 * np.linspace(0, 1, w)[None, :] * np.linspace(0.6, 1, h)[:, None]  # a shadow across the page
    photo = Image.fromarray(np.round(light * (1 - coverage) + 40 * coverage).astype(np.uint8))
    lit = to_mnist(Image.fromarray(np.round(220 * (1 - coverage) + 40 * coverage).astype(np.uint8)))
    assert np.abs(to_mnist(open_image(encode(photo, "JPEG", quality=90))).astype(int) - lit).mean() < 6


def test_aspect_ratio_is_kept():
    bar = np.zeros((300, 300), dtype=np.uint8)
    bar[50:250, 140:160] = 255  # 200 tall, 20 wide
    out = to_mnist(Image.fromarray(bar))
    cols = np.flatnonzero(out.max(0) > 128)
    assert bbox_side(out) == 20 and 1 <= len(cols) <= 3


def width(x: np.ndarray) -> float:
    """Stroke width of a uint8 (28, 28) digit, measured at 4x as the preprocessing measures it."""
    return stroke_width(np.asarray(Image.fromarray(x).resize((112, 112), Image.Resampling.BILINEAR)) / 255.0)


def test_thick_marker_strokes_are_thinned_to_mnist_width(mnist):
    digits = mnist["test"].images[:9].numpy()
    thick = [np.asarray(Image.fromarray(d).resize((280, 280)).filter(ImageFilter.MaxFilter(31))) for d in digits]
    assert np.median([width(to_mnist(Image.fromarray(255 - t))) for t in thick]) < 15  # MNIST's 95th percentile
    assert 9 < np.median([width(d) for d in digits]) < 11  # MNIST's median: about 10


def test_one_pixel_pen_strokes_are_thickened():
    ring = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(ring).ellipse((80, 40, 320, 360), outline=0, width=2)  # a "0" drawn with a 2-pixel pen
    out = to_mnist(ring)
    assert out.max() == 255 and 8 < width(out) < 15


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP", "GIF", "TIFF"])
def test_every_common_format_reads_alike(mnist, fmt):
    image = dark_on_white(drawn(mnist["test"].images[4].numpy(), scale=8, canvas=(300, 260), at=(5, 20)))
    expected = to_mnist(image)
    got = to_mnist(open_image(encode(image, fmt)))
    assert np.abs(got.astype(int) - expected).mean() < 4


def test_sixteen_bit_greyscale_and_palette_images_read_alike(mnist):
    coverage = drawn(mnist["test"].images[5].numpy(), scale=8, canvas=(300, 260), at=(5, 20))
    expected = to_mnist(dark_on_white(coverage))
    sixteen = Image.fromarray(np.round(65535 * (1 - coverage)).astype(np.uint16))
    palette = dark_on_white(coverage).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    for image in (sixteen, palette):
        assert np.abs(to_mnist(open_image(encode(image))).astype(int) - expected).mean() < 4


def test_phone_photo_orientation_is_honoured(mnist):
    image = dark_on_white(drawn(mnist["test"].images[6].numpy(), scale=8, canvas=(300, 260), at=(5, 20)))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    sideways = encode(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    assert np.abs(to_mnist(open_image(sideways)).astype(int) - to_mnist(image)).mean() < 4


# -- sources

def test_numpy_arrays_of_every_layout_are_accepted(mnist):
    digit = mnist["test"].images[7].numpy()
    expected = to_mnist(Image.fromarray(digit))
    assert np.array_equal(to_mnist(open_image(digit)), expected)
    assert np.array_equal(to_mnist(open_image(digit / 255.0)), expected)
    assert np.array_equal(to_mnist(open_image(np.stack([digit] * 3, 2))), expected)
    rgba = np.concatenate([np.stack([digit] * 3, 2), np.full((28, 28, 1), 255, np.uint8)], 2)
    assert np.array_equal(to_mnist(open_image(rgba)), expected)


@pytest.mark.parametrize(("array", "fragment"), [
    (np.zeros((4, 4, 2), np.uint8), "must be (H, W)"),
    (np.full((4, 4), -0.5), "from 0 to 1 (or 0 to 255), got -0.5 to -0.5"),
    (np.full((4, 4), 70000), "from 0 to 255 (or 0 to 65535), got 70000 to 70000"),
    (np.array([[0.5, np.nan]]), "not numbers (NaN or infinity)"),
    (np.zeros((4, 4), complex), "must be uint8"),
])
def test_bad_arrays_are_refused(array, fragment):
    with pytest.raises(ImageError, match=re.escape(fragment)):
        open_image(array)


# -- bad images

def test_a_blank_image_has_no_ink():
    for blank in (np.full((200, 300), 255, np.uint8), np.zeros((50, 50), np.uint8), np.full((64, 64), 128, np.uint8)):
        with pytest.raises(ImageError, match="no ink"):
            to_mnist(open_image(encode(Image.fromarray(blank))))


def test_faint_noise_is_not_ink():
    noise = np.random.default_rng(0).integers(230, 256, (200, 200)).astype(np.uint8)
    with pytest.raises(ImageError, match="no ink"):
        to_mnist(Image.fromarray(noise))


@pytest.mark.parametrize(("side", "fragment"), [(30000, "900000000 pixels"), (8000, "8000x8000 pixels")])
def test_a_huge_declared_size_is_refused_before_decoding(monkeypatch, tmp_path, side, fragment):
    def decode(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", decode)
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side))
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError, match=f"{fragment}, more than the 40 megapixels digitsum accepts"):
            open_image(source)


def test_the_pixel_cap_applies_to_pil_images_and_arrays(monkeypatch):
    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="11x10 pixels"):
        open_image(Image.new("L", (11, 10)))
    with pytest.raises(ImageError, match="11x10 pixels"):
        open_image(np.zeros((10, 11), np.uint8))


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "not found"),
    (b"", "is empty (0 bytes)"),
    (b"digit,number\n7,3\n", "is not an image"),
    ("truncated", "is truncated or corrupt"),
])
def test_unreadable_files_are_refused_with_the_reason(tmp_path, content, fragment):
    path = tmp_path / "digit.png"
    if content == "truncated":
        whole = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)))
        content = whole[: len(whole) // 2]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=re.escape(fragment)) as caught:
        open_image(path)
    assert str(path) in str(caught.value)


def test_a_truncated_file_opened_by_pil_is_refused_too(tmp_path):
    whole = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(whole[: len(whole) // 2])
    with Image.open(path) as lazy, pytest.raises(ImageError, match="image is truncated or corrupt"):
        open_image(lazy)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        open_image(tmp_path)


@pytest.mark.parametrize("side", [8, 16, 32])
def test_small_images_become_full_size_digits(mnist, side):
    """Digits as small as sklearn's 8x8 or USPS's 16x16 are scaled up to MNIST's 20-pixel box."""
    for digit in mnist["test"].images[:20].numpy():
        small = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BOX))
        out = to_mnist(Image.fromarray(small))
        assert out.shape == (28, 28) and out.max() == 255
        assert bbox_side(out) in (19, 20, 21)
        assert np.abs(np.array(centre_of_mass(out)) - 14).max() <= 1


def pillow_lanczos(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(x.astype(np.float32)).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_the_lanczos_resize_is_pillows_to_its_last_bits(seed):
    """Up and down, one axis or both, either pass first: resample.lanczos gives Pillow's float32 pixels, a sum
    run in another order changing the last bits of a rare one (the passes in the other order would change a fifth)."""
    rng = np.random.default_rng(seed)
    same = total = 0
    for _ in range(60):
        h, w = (int(n) for n in rng.integers(1, resample.KEPT_SIDE + 1, 2))
        x = rng.random((h, w), dtype=np.float32) * float(rng.choice([1.0, 255.0]))
        if rng.random() < 0.5:
            x = (x > 0.6 * x.max()).astype(np.float32)  # ink and background, as find_ink makes them
        size = (int(rng.integers(1, resample.KEPT_SIDE + 1)), int(rng.integers(1, resample.KEPT_SIDE + 1)))
        size = [size, (w, size[1]), (size[0], h), (w, h)][int(rng.integers(0, 4))]
        ours, pillows = resample.lanczos(x, size), pillow_lanczos(x, size)
        assert ours.dtype == np.float32 and ours.shape == pillows.shape == (size[1], size[0])
        np.testing.assert_allclose(ours, pillows, rtol=0, atol=4 * float(np.spacing(np.float32(max(x.max(), 1)))))
        same, total = same + int((ours == pillows).sum()), total + ours.size
    assert same >= 0.999 * total
    photo = rng.random((300, 200), dtype=np.float32)  # larger than the kept weights' sizes: Pillow's own call
    assert np.array_equal(resample.lanczos(photo, (80, 120)), pillow_lanczos(photo, (80, 120)))


def test_page_drawings_preprocess_to_the_pixels_pillows_resize_gives(mnist, monkeypatch):
    """The kept Lanczos weights change no pixel of a digit: the page's ink boxes, large dark-on-white scans and
    small images come out as they do through Pillow's own resize."""
    style = load_script(REPO / "benchmarks" / "user_style.py")
    images = []
    for i, x in enumerate(mnist["test"].images[:240].numpy()):
        kind = i % 3
        images.append(style.page_picture(style.page_pad(x)) if kind == 0 else
                      Image.fromarray(255 - x).resize((90 + i, 140), Image.Resampling.BILINEAR) if kind == 1 else
                      Image.fromarray(x).resize((16, 16), Image.Resampling.BOX))
    ours = [to_mnist(image) for image in images]
    monkeypatch.setattr(digit_module, "lanczos", pillow_lanczos)
    assert all(np.array_equal(a, to_mnist(image)) for a, image in zip(ours, images, strict=True))


@pytest.mark.parametrize("n", [1, 2, 7, 260, 261])
def test_median_is_numpys(n):
    rng = np.random.default_rng(n)
    for values in (rng.random(n, dtype=np.float32) * 255, rng.integers(0, 256, n).astype(np.int16),
                   np.round(rng.random((n, 1)) * 3)):
        assert median(values) == float(np.median(values))


@pytest.mark.parametrize("size", [(1, 1), (28, 28), (64, 37), (70000, 3)])
def test_a_png_s_declared_size_is_read_from_its_header_as_pillow_reads_it(size):
    png = encode(Image.new("L", size))
    with Image.open(io.BytesIO(png)) as image:
        assert decode.declared_pixels(png) == image.width * image.height == size[0] * size[1]
    assert decode.declared_pixels(png_header(30000, 30000)) == 900_000_000
    assert decode.declared_pixels(encode(Image.new("L", size), "BMP")) == size[0] * size[1]  # other formats: Pillow
    assert decode.declared_pixels(png[:20]) is None and decode.declared_pixels(b"not an image") is None
