"""``digitsum export``: a checkpoint as an ONNX file, checked against torch before it is written."""

from __future__ import annotations

from .common import add_checkpoint, add_data_dir


def add(sub) -> None:
    from ..export import CHECK_IMAGES, OPSET, TOLERANCE

    p = sub.add_parser("export", help="export a checkpoint to ONNX",
                       description="Write a checkpoint (the bundled model by default) as one self-contained ONNX "
                       f"file (opset {OPSET}): inputs image float32 [batch,1,28,28] normalised as in training and "
                       "number int64 [batch]; outputs digit_logits [batch,10] and sum_logits [batch,19]. The graph "
                       f"is run with onnxruntime against torch on MNIST test images first; unless every logit is "
                       f"within {TOLERANCE:g} and every argmax agrees, nothing is written.")
    add_checkpoint(p)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="the file to write, e.g. digitsum.onnx")
    add_data_dir(p)
    p.add_argument("--check-images", type=int, default=CHECK_IMAGES, metavar="N",
                   help=f"MNIST test images to check the export on, 1-10000 (default: {CHECK_IMAGES})")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..config import ConfigError
    from ..export import check_batch, describe, export_onnx

    if not 1 <= args.check_images <= 10_000:
        raise ConfigError(f"--check-images must be 1-10000, got {args.check_images}")
    checkpoint = load_checkpoint(args.checkpoint)
    images, numbers, what = check_batch(args.data_dir, args.check_images)
    diff = export_onnx(checkpoint.model, args.output, images, numbers, describe(checkpoint))
    print(f"wrote {args.output}: onnxruntime matches torch on {what} "
          f"(max abs logit difference {diff:.2g}, identical digits and sums)")
    return 0
