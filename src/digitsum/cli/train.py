"""``digitsum train``: train a model and write a run directory."""

from __future__ import annotations

import sys
import time
from dataclasses import fields

from ..config import ARCHS, ModelConfig, TrainConfig
from .common import add_data_dir, format_metrics

# TrainConfig fields exposed as flags, with their help; defaults come from TrainConfig.
FLAGS = {
    "epochs": (int, "passes over the training images"),
    "batch_size": (int, "images per optimizer step"),
    "lr": (float, "peak learning rate (AdamW, one-cycle schedule)"),
    "weight_decay": (float, "AdamW weight decay"),
    "max_shift": (int, "random shift of training images in pixels, 0 to disable"),
    "seed": (int, "seed of weights, order, numbers and shifts"),
    "threads": (int, "CPU threads for torch, 0 for torch's default"),
    "device": (str, "cpu, cuda, cuda:N, mps or auto"),
    "limit": (int, "use only the first N training images, 0 for all"),
    "val_size": (int, "training images held out (the last ones) for validation"),
}


def add(sub) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train on MNIST images paired with numbers; validate each epoch on held-out "
                       "training images; keep the best epoch's weights and report their test figures.")
    add_data_dir(p)
    p.add_argument("--out", help="run directory (default: runs/<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--report", action="store_true", help="write the run's report (digitsum report) into OUT/report")
    p.add_argument("--arch", choices=ARCHS, default=ModelConfig.arch,
                   help="network: default (digitsum's) or seed (the notebook's)")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, (kind, text) in FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=defaults[name],
                       help=f"{text} (default: {defaults[name]})")
    p.set_defaults(run=run)


class Progress:
    """Per-epoch progress bar on stderr (only on a terminal) and one line per epoch on stdout."""

    def __init__(self, epochs: int):
        self.epochs, self.epoch, self.start = epochs, 1, 0.0
        self.enabled = sys.stderr.isatty()

    def step(self, step: int, steps: int) -> None:
        if not self.enabled:
            return
        if step == 1:
            self.start = time.perf_counter()
        if step % 10 and step != steps:
            return
        done = int(30 * step / steps)
        rate = step / max(time.perf_counter() - self.start, 1e-9)
        sys.stderr.write(f"\repoch {self.epoch}/{self.epochs} [{'#' * done}{'.' * (30 - done)}] "
                         f"{step}/{steps} {rate:.0f} it/s")
        if step == steps:
            sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    def epoch_done(self, r, model=None) -> None:
        print(f"epoch {r.epoch:>2}/{self.epochs}  loss {r.train_loss:.4f}  "
              f"train digit {100 * r.train_digit_accuracy:.2f}% sum {100 * r.train_sum_accuracy:.2f}%  "
              f"val digit {100 * r.val_digit_accuracy:.2f}% sum {100 * r.val_sum_accuracy:.2f}%  "
              f"{r.seconds:.1f}s", flush=True)
        self.epoch = r.epoch + 1


def run(args) -> int:
    from ..train import train

    model_cfg = ModelConfig(arch=args.arch)
    cfg = TrainConfig(**{name: getattr(args, name) for name in FLAGS})
    out = args.out or time.strftime("runs/%Y%m%d-%H%M%S")
    if args.report:  # before training, not after it
        from ..report import require_matplotlib

        require_matplotlib()
    progress = Progress(cfg.epochs)
    metrics = train(model_cfg, cfg, out, args.data_dir, args.overwrite, progress.epoch_done, progress.step)
    print(f"test (best epoch {metrics['best_epoch']}): {format_metrics(metrics)}")
    print(f"run written to {out}")
    if args.report:
        from ..report import report_run
        from .report import print_report

        print_report(report_run(out, data_dir=args.data_dir))
    return 0
