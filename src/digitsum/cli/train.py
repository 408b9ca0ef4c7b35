"""``digitsum train``: train a model and write a run directory, or resume one.

Under ``torchrun`` every rank runs this command; only rank 0 prints.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import fields

from ..config import ARCHS, DEVICES, FUSIONS, RECIPES, ModelConfig, TrainConfig, model_for, recipe
from ..errors import ConfigError
from ..launch import env_rank  # only rank 0 prints
from ..pairs import parse_pairs
from ..training.distributed import PeerFailed
from .common import add_data_dir, add_quiet, device, format_metrics, progress

# TrainConfig fields exposed as flags, with their help; defaults come from TrainConfig.
FLAGS = {
    "epochs": (int, "passes over the training images"),
    "batch_size": (int, "images per optimizer step, over all processes under torchrun"),
    "lr": (float, "peak learning rate (AdamW, one-cycle schedule)"),
    "warmup": (float, "share of the run spent warming up to the peak rate"),
    "weight_decay": (float, "AdamW weight decay"),
    "label_smoothing": (float, "label smoothing of both cross-entropies"),
    "consistency": (float, "weight of the term that makes the sum head agree with digit head + number"),
    "max_shift": (int, "random shift of training images in pixels, 0 to disable"),
    "stretch": (float, "share of training digits stretched toward filling their box (as other people's scans are)"),
    "negatives": (float, "synthetic non-digits per training digit, for the verdict head (0 to train none)"),
    "negative_kinds": (str, "broad (the default: classic's and filled shapes, textures, very thin and thick pens, "
                       "made-up characters) or classic (letters, symbols, scribbles, digit pairs, mirrored and "
                       "turned digits)"),
    "seed": (int, "seed of weights, order, numbers and shifts"),
    "threads": (int, "CPU threads for torch, 0 for torch's default"),
    "device": (device, DEVICES),
    "limit": (int, "use only the first N training images, 0 for all"),
    "val_size": (int, "training images held out (the last ones) for validation"),
    "extra_repeat": (int, "times each --extra-digits image appears in an epoch"),
    "init": (str, "start from this checkpoint's weights, to fine-tune: a run directory, a .safetensors file or "
             "'bundled' (its network, unless --arch/--fusion say the same)"),
    "hold_out_pairs": (str, "(digit, number) combinations never trained or validated on, scored apart: "
                       "D+N,D+N... (7+5,3+9), random:K or sum:S"),
}
RESUMABLE = ("threads", "device")  # flags --resume accepts: where the run continues, not what it computes


def add(sub) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train on MNIST images paired with numbers; validate each epoch on held-out "
                       "training images; keep the best epoch's weights and report their test figures.")
    add_data_dir(p)
    p.add_argument("--out", help="run directory (default: runs/<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last saved point, "
                   "with its own config (only --data-dir, --threads, --device and --report may be given)")
    p.add_argument("--report", action="store_true", help="write the run's report (digitsum report) into OUT/report")
    p.add_argument("--recipe", choices=list(RECIPES), default="default",
                   help="a preset of the options below, which flags still override: default (the best accuracy) "
                   "fast (about 99.5%% in three epochs; no verdict head) or finetune (two gentle epochs, for --init "
                   "with --extra-digits)")
    p.add_argument("--arch", choices=ARCHS,
                   help=f"network: default (digitsum's) or seed (the notebook's) (default: {ModelConfig.arch})")
    p.add_argument("--fusion", choices=FUSIONS, help="how the default network's sum head fuses the number: "
                   "product (number embedding times image side), concat, or shift (the number a learned kernel "
                   f"of offsets slid along the digit head's distribution) (default: {ModelConfig.fusion})")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, (kind, text) in FLAGS.items():  # default None: tells a flag given from one left out
        shown = defaults[name] if defaults[name] != "" else "none"
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"{text} (default: {shown})")
    p.add_argument("--extra-digits", action="append", metavar="FILE.csv", help="labelled digits to train on beside "
                   "MNIST's: a CSV with the columns image,digit (as evaluate --manifest reads; serve --collect writes "
                   "one); repeatable")
    add_quiet(p)
    p.set_defaults(run=run)


class Progress:
    """A progress bar inside each epoch on stderr (tqdm: step, loss, images/s, time left; only on a terminal,
    only on rank 0, not with --quiet) and one line per epoch on stdout; a resumed run first says where it
    continues. Its methods are digitsum.training.train's hooks."""

    def __init__(self, run_dir, quiet: bool):
        self.run_dir, self.quiet = run_dir, quiet
        self.epochs, self.batch_size, self.epoch = 0, 1, 1
        self.bar, self.loss = None, None

    def hooks(self):
        from ..training import Hooks

        return Hooks(on_start=self.start, on_step=self.step, on_epoch=self.epoch_done)

    def start(self, started) -> None:
        """``on_start``: the run's own epochs and batch size (a resumed run's come from its config.json)."""
        self.epochs, self.batch_size, self.epoch = started.cfg.epochs, started.cfg.batch_size, started.epoch
        if started.resumed:
            print(f"resuming {self.run_dir} at epoch {started.epoch}, step {started.step} "
                  f"(its own config: {self.epochs} epochs)", flush=True)

    def step(self, done) -> None:
        """``on_step``: the bar advances."""
        if self.bar is None:
            self.bar = progress(done.steps, f"epoch {self.epoch}/{self.epochs}", self.quiet, "step", done.step - 1)
            self.loss = done.loss
        self.loss = 0.9 * self.loss + 0.1 * done.loss  # smoothed over the last steps
        self.bar.update(1)
        if done.step % 10 == 0 or done.step == done.steps:
            rate = done.step * self.batch_size / max(done.seconds, 1e-9)
            self.bar.set_postfix_str(f"loss {self.loss:.3f}, {rate:,.0f} images/s")
        if done.step == done.steps:
            self.bar.close()
            self.bar = None

    def epoch_done(self, r, model=None) -> None:
        print(f"epoch {r.epoch:>2}/{self.epochs}  loss {r.train_loss:.4f}  "
              f"train digit {100 * r.train_digit_accuracy:.2f}% sum {100 * r.train_sum_accuracy:.2f}%  "
              f"val digit {100 * r.val_digit_accuracy:.2f}% sum {100 * r.val_sum_accuracy:.2f}%  "
              f"{r.seconds:.1f}s", flush=True)
        self.epoch = r.epoch + 1


def run(args) -> int:
    from ..training import TrainingInterrupted

    try:
        return start_or_resume(args)
    except PeerFailed:  # the failing rank reported it
        return 1
    except TrainingInterrupted as stopped:
        if env_rank() == 0:
            print(f"digitsum train: {stopped}; the run is saved in {stopped.run_dir}. Resume with: "
                  f"{resume_command(stopped.run_dir, args.data_dir)}", file=sys.stderr)
        return 130
    except ConfigError:
        if env_rank() == 0:  # the flags are the same on every rank: report them once
            raise
        return 2


def resume_command(run_dir, data_dir: str | None) -> str:
    """The command that continues a stopped run (under torchrun, with the same torchrun options)."""
    launcher = "torchrun <the same options> -m digitsum" if "TORCHELASTIC_RUN_ID" in os.environ else "digitsum"
    data = f" --data-dir {shlex.quote(data_dir)}" if data_dir else ""
    return f"{launcher} train --resume {shlex.quote(str(run_dir))}{data}"


def given_flags(args) -> list[str]:
    """The run-shaping flags given on the command line (those --resume refuses)."""
    names = [n for n in ("out", "arch", "fusion", "extra_digits", *FLAGS)
             if n not in RESUMABLE and getattr(args, n) is not None]
    names += ["recipe"] if args.recipe != "default" else []
    return [f"--{n.replace('_', '-')}" for n in names] + (["--overwrite"] if args.overwrite else [])


def start_or_resume(args) -> int:
    from ..training import New, Resume, train

    if args.resume and given_flags(args):
        raise ConfigError(f"--resume continues {args.resume} with the config it was started with; "
                          f"drop {', '.join(given_flags(args))} (or start a new run with --out)")
    if args.report:  # before training, not after it
        from ..report import require_matplotlib

        require_matplotlib()
    if args.resume:
        out = args.resume
        metrics = train(None, None, out, args.data_dir, start=Resume(args.threads, args.device),
                        hooks=Progress(out, args.quiet).hooks())
    else:
        given = {name: getattr(args, name) for name in (*FLAGS, "extra_digits") if getattr(args, name) is not None}
        cfg = recipe(args.recipe, **given)
        parse_pairs(cfg.hold_out_pairs)  # a bad spec is refused before any data is read
        model_cfg = model_config(args, cfg)
        out = args.out or time.strftime("runs/%Y%m%d-%H%M%S")
        metrics = train(model_cfg, cfg, out, args.data_dir, start=New(args.overwrite),
                        hooks=Progress(out, args.quiet).hooks())
    if env_rank() != 0:
        return 0
    print(f"test (best epoch {metrics['best_epoch']}): {format_metrics(metrics)}")
    print(f"run written to {out}")
    if args.report:
        from ..report import report_run
        from .report import print_report

        print_report(report_run(out, data_dir=args.data_dir))
    return 0


def model_config(args, cfg: TrainConfig) -> ModelConfig:
    """The network the flags ask for (``config.model_for``: a recipe trained without non-digits, --negatives 0,
    has no verdict head); --fusion belongs to the default architecture only."""
    if args.fusion and args.arch == "seed":
        raise ConfigError("--fusion shapes the default network; the seed network always concatenates "
                          "(drop --fusion or --arch seed)")
    if cfg.init:  # fine-tuning: the network is the checkpoint's (training.sources checks --arch and --fusion)
        from ..checkpoint import read_config
        from ..training.sources import init_path

        theirs = read_config(init_path(cfg.init))[1]  # its weights are read once, when training starts
        return theirs if not (args.arch or args.fusion) else model_for(cfg, args.arch or theirs.arch,
                                                                       args.fusion or theirs.fusion)
    return model_for(cfg, args.arch or ModelConfig.arch, args.fusion or ModelConfig.fusion)
