"""In-process inference speed: torch eager against onnxruntime, and what makes each faster.

Every variant is a backend with ``predict.TorchBackend``'s call signature (numpy float32
images (N, 1, 28, 28) and int64 numbers (N,) in, numpy logits out), fed the first 1,024
MNIST test images. Per thread count, the variants take turns in rounds (A B C A B C ...) so
that a change in the machine's load falls on all of them alike; each round starts with
warm-up calls that are not timed. Figures: batch-1 latency p50 and p99 over every timed call,
and batch-1024 throughput from the median batch time.

Torch variants (all under ``torch.inference_mode()``): ``eager`` is ``TorchBackend`` as
``load_model`` builds it, weights and inputs channels-last (NHWC), the layout oneDNN's
convolutions prefer; ``NCHW`` is the same in torch's default contiguous layout; ``oneDNN
off`` is eager with ``torch.backends.mkldnn`` disabled; ``compile`` (opt-in, a minute or
more of compiling, not timed) is ``torch.compile``. (Folding batch norm into the
convolutions does not apply: the network pools between them.)
onnxruntime variants differ in graph optimisation level and thread spinning;
``optimisation all`` is ``OnnxBackend``'s default (no spinning).

    python benchmarks/bench_inference.py [--quick] [--checkpoint PATH] [--threads N] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import machine
from digitsum.checkpoint import load_checkpoint
from digitsum.cli.export import check_batch
from digitsum.export import export_onnx
from digitsum.mixture import normalize
from digitsum.model import Logits
from digitsum.onnx_runtime import OnnxBackend
from digitsum.predict import TorchBackend
from summary import spread

FULL = {"rounds": 5, "calls": 400, "batches": 4, "warmup": 20}  # per round: 2,000 batch-1 calls, 20 batches
QUICK = {"rounds": 1, "calls": 50, "batches": 2, "warmup": 5}  # a smoke run, not a measurement
BATCH = 1024
TARGET_P50_MS, TARGET_IMAGES_S = 0.5, 20_000


class NCHWBackend(TorchBackend):
    """TorchBackend with weights and inputs in torch's default contiguous (NCHW) layout."""

    def __init__(self, model: torch.nn.Module):
        super().__init__(copy.deepcopy(model))  # TorchBackend makes its model channels-last: undo that
        self.model.to(memory_format=torch.contiguous_format)

    def __call__(self, images: np.ndarray, numbers: np.ndarray) -> Logits:
        with torch.inference_mode():
            x = torch.from_numpy(images)  # (N, 1, 28, 28) NCHW
            outputs = self.model(x, torch.from_numpy(numbers))
        return Logits(*(None if o is None else o.numpy() for o in outputs))


class NoOneDNN(TorchBackend):
    """TorchBackend with oneDNN (mkldnn) disabled: torch's own convolution kernels."""

    def __call__(self, images, numbers):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a TF32 notice about Intel GPUs
            with torch.backends.mkldnn.flags(enabled=False):
                return super().__call__(images, numbers)


def variants(model, onnx_path: Path, threads: int, compile_: bool) -> dict[str, object]:
    """name -> backend, every one using ``threads`` threads."""
    found = {
        "torch eager": TorchBackend(model),
        "torch NCHW": NCHWBackend(model),
        "torch oneDNN off": NoOneDNN(model),
        "onnxruntime optimisation off": OnnxBackend(onnx_path, threads, optimization="disable"),
        "onnxruntime optimisation all": OnnxBackend(onnx_path, threads),
        "onnxruntime all + spinning": OnnxBackend(onnx_path, threads, spinning=True),
    }
    if compile_:
        found["torch compile"] = TorchBackend(torch.compile(copy.deepcopy(model)))
    return found


def measure(backends: dict, images: np.ndarray, numbers: np.ndarray, size: dict) -> dict[str, dict]:
    """name -> {p50, p99 (ms), images_s, images_cpu_s, and each round's p50 and images_s}: the variants in turn,
    ``size['rounds']`` times; a figure is the median of the rounds' figures.

    ``images_cpu_s`` divides by this process's CPU time (every thread's) rather than wall time:
    on a machine shared with other work it estimates what the cores would do if they were free."""
    rounds = {name: [] for name in backends}  # per round: (batch-1 seconds, [(wall, CPU) per batch])
    for _ in range(size["rounds"]):
        for name, backend in backends.items():
            for i in range(size["warmup"]):
                backend(images[i : i + 1], numbers[i : i + 1])
            backend(images, numbers)
            single, batched = [], []
            for i in range(size["calls"]):
                j = i % len(images)
                start = time.perf_counter()
                backend(images[j : j + 1], numbers[j : j + 1])
                single.append(time.perf_counter() - start)
            for _ in range(size["batches"]):
                start, cpu = time.perf_counter(), time.process_time()
                backend(images, numbers)
                batched.append((time.perf_counter() - start, time.process_time() - cpu))
            rounds[name].append((single, batched))
    out = {}
    for name, per_round in rounds.items():
        p50 = [1e3 * float(np.percentile(single, 50)) for single, _ in per_round]
        p99 = [1e3 * float(np.percentile(single, 99)) for single, _ in per_round]
        rate = [len(images) / statistics.median(wall for wall, _ in batched) for _, batched in per_round]
        cpu_rate = [len(images) / statistics.median(cpu for _, cpu in batched) for _, batched in per_round]
        out[name] = {"p50": statistics.median(p50), "p99": statistics.median(p99), "images_s": statistics.median(rate),
                     "images_cpu_s": statistics.median(cpu_rate), "p50_rounds": p50, "images_s_rounds": rate}
    return out


# (what changed, before, after): the comparisons the table is read for
CHANGES = [
    ("torch: channels-last", "torch NCHW", "torch eager"),
    ("torch: oneDNN off", "torch eager", "torch oneDNN off"),
    ("torch: torch.compile", "torch eager", "torch compile"),
    ("onnxruntime: graph optimisation all", "onnxruntime optimisation off", "onnxruntime optimisation all"),
    ("onnxruntime: thread spinning on", "onnxruntime optimisation all", "onnxruntime all + spinning"),
    ("onnxruntime (default) against torch eager", "torch eager", "onnxruntime optimisation all"),
]


def change_lines(results: dict[int, dict[str, dict]]) -> list[str]:
    """One row per change and thread count: batch-1 p50 and batch-1024 throughput, before -> after."""
    rows = ["| change | threads | batch-1 p50 ms | batch-1024 images/s | images per CPU-second |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for threads, figures in results.items():
        for what, before, after in CHANGES:
            if before in figures and after in figures:
                b, a = figures[before], figures[after]
                p50 = f"{b['p50']:.3f} -> {a['p50']:.3f} ({a['p50'] / b['p50'] - 1:+.0%})"
                rate, cpu = (f"{b[k]:,.0f} -> {a[k]:,.0f} ({a[k] / b[k] - 1:+.0%})"
                             for k in ("images_s", "images_cpu_s"))
                rows.append(f"| {what} | {threads} | {p50} | {rate} | {cpu} |")
    return rows


def run(quick: bool = False, checkpoint: str | None = None, threads: int = 0, data_dir: str | None = None,
        compile_: bool = False) -> str:
    """Measure every variant at ``threads`` threads (0: at 1 and at every core) and return the Markdown section."""
    size = QUICK if quick else FULL
    thread_counts = [threads] if threads else sorted({1, os.cpu_count() or 1})
    ckpt = load_checkpoint(checkpoint)
    raw, numbers_t, what = check_batch(data_dir, BATCH)
    images, numbers = normalize(raw).numpy(), numbers_t.numpy()  # (1024, 1, 28, 28) float32, (1024,) int64
    load_before = os.getloadavg()[0]
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        diff = export_onnx(ckpt.model, onnx_path, raw, numbers_t)
        for t in thread_counts:
            torch.set_num_threads(t)
            results[t] = measure(variants(ckpt.model, onnx_path, t, compile_), images, numbers, size)
    load_after = os.getloadavg()[0]

    calls = size["rounds"] * size["calls"]
    flags = (" --quick" if quick else "") + (f" --checkpoint {checkpoint}" if checkpoint else "")
    flags += (f" --threads {threads}" if threads else "") + (" --compile" if compile_ else "")
    lines = [
        "## Inference in process: torch against onnxruntime",
        "",
        f"`python benchmarks/bench_inference.py{flags}`: {ckpt.config.get('model', {}).get('arch', '?')} network "
        f"({'bundled model' if checkpoint is None else checkpoint}), {what}; batch-1 latency over {calls} calls, "
        f"batch-{BATCH} throughput from the median of {size['batches']} batches, after warm-up; variants "
        f"interleaved in {size['rounds']} round(s); each figure the median of the rounds (min-max). The ONNX graph "
        f"matches torch within {diff:.1g}. "
        f"Load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} logical cores.",
        "",
        "| runtime and setting | threads | batch-1 p50 ms | batch-1 p99 ms | batch-1024 images/s "
        "| images per CPU-second |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t, figures in results.items():
        lines += [f"| {name} | {t} | {spread(m['p50_rounds'], '{:.3f}')} | {m['p99']:.3f} | "
                  f"{spread(m['images_s_rounds'], '{:,.0f}')} | {m['images_cpu_s']:,.0f} |"
                  for name, m in figures.items()]
    flops, most = machine.flops_per_image(ckpt.model), max(results)
    best_p50 = min((m["p50"], f"{name}, {t} thread(s)") for t, fs in results.items() for name, m in fs.items())
    best_rate = max((m["images_s"], f"{name}, {t} thread(s)") for t, fs in results.items() for name, m in fs.items())
    lines += [
        "",
        f"Targets: batch-1 p50 <= {TARGET_P50_MS} ms: best {best_p50[0]:.3f} ms ({best_p50[1]}), "
        f"{'met' if best_p50[0] <= TARGET_P50_MS else 'NOT met'}; >= {TARGET_IMAGES_S:,} images/s: best "
        f"{best_rate[0]:,.0f} ({best_rate[1]}), {'met' if best_rate[0] >= TARGET_IMAGES_S else 'NOT met'}.",
        "",
        f"Efficiency: at {flops / 1e6:.2f} MFLOP per image (`benchmarks/machine.py`), the best batch-{BATCH} "
        f"throughput on {most} thread(s) is {machine.efficiency(best_at(results, most) * flops / 1e9, most)}.",
        "",
        "Each change, before -> after:",
        "",
        *change_lines(results),
    ]
    if quick:
        lines += ["", "_Quick run: a smoke test at tiny size, not a measurement._"]
    return "\n".join(lines)


def best_at(results: dict[int, dict[str, dict]], threads: int) -> float:
    """The highest batch throughput (images/s) of any variant at ``threads`` threads."""
    return max(m["images_s"] for m in results[threads].values())


def main(argv: list[str] | None = None) -> int:
    from digitsum.cli.common import add_checkpoint
    from run_all import add_bench_flags

    parser = add_bench_flags(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    add_checkpoint(parser)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch and onnxruntime intra-op threads (default: 0, meaning 1 and then every core)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (minutes of compiling)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be 0 or more, got {args.threads}")
    print(run(args.quick, args.checkpoint, args.threads, args.data_dir, args.compile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
