"""``digitsum export``: a checkpoint as an ONNX file, checked against torch before it is written."""

from __future__ import annotations

from .common import add_checkpoint, add_data_dir, int_in


def add(sub) -> None:
    from ..export import CHECK_IMAGES, OPSET, TOLERANCE

    p = sub.add_parser("export", help="export a checkpoint to ONNX",
                       description="Write a checkpoint (the bundled model by default) as one self-contained ONNX "
                       f"file (opset {OPSET}): inputs image float32 [batch,1,28,28] normalised as in training and "
                       "number int64 [batch]; outputs digit_logits [batch,10] and sum_logits [batch,19]. The graph "
                       "is run with onnxruntime against torch first, on MNIST test images when they are at hand "
                       f"(else on seeded random images); unless every logit is within {TOLERANCE:g} and every "
                       "argmax agrees, nothing is written.")
    add_checkpoint(p)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="the file to write, e.g. digitsum.onnx")
    add_data_dir(p)
    p.add_argument("--check-images", type=int_in(1, 10_000), default=CHECK_IMAGES, metavar="N",
                   help=f"images to check the export on, 1-10000 (default: {CHECK_IMAGES})")
    p.set_defaults(run=run)


def check_batch(data_dir: str | None, n: int):
    """(images, numbers, what they are): the first ``n`` MNIST test images with their fixed numbers when
    the MNIST files are at hand (nothing is downloaded for an export), else seeded random images."""
    from ..data import load_mnist, missing_files, resolve_data_dir
    from ..evaluate import fixed_test_mixture
    from ..export import random_check_batch

    folder = resolve_data_dir(data_dir)
    if missing_files(folder):
        images, numbers, what = random_check_batch(n)
        return images, numbers, f"{what} (no MNIST files in {folder})"
    test = fixed_test_mixture(load_mnist(folder, download=False, splits=("test",))["test"])
    return test.images[:n], test.numbers[:n], f"{n} MNIST test images"


def run(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..errors import require
    from ..export import describe, export_onnx

    for module in ("onnx", "onnxscript", "onnxruntime"):  # before anything loads: one line if one is missing
        require(module, "onnx", "digitsum export")

    checkpoint = load_checkpoint(args.checkpoint)
    images, numbers, what = check_batch(args.data_dir, args.check_images)
    diff = export_onnx(checkpoint.inference_model, args.output, images, numbers, describe(checkpoint))
    print(f"wrote {args.output}: onnxruntime matches torch on {what} "
          f"(max abs logit difference {diff:.2g}, identical digits and sums)")
    return 0
