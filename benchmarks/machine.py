"""How much work a network does per image, and how much this CPU could do at most: efficiency figures.

``flops_per_image`` counts the multiply-adds of a network's convolutions and linear layers for one
image (forward pass; a training step costs about three times that: forward, and backward through
activations and weights). ``peak_gflops`` is this CPU's fp32 peak: cores x clock x FLOPs per
cycle, the last from its vector units (two fused multiply-add units of 8 fp32 lanes for AVX2 +
FMA, as on AMD's cores, AVX-512 included, which they run 256 bits at a time; 16 lanes for an
Intel core with AVX-512). It is an upper bound no real network reaches; the ratio says how close.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

TRAINING_FACTOR = 3  # a training step: forward, backward to activations, backward to weights


def flops_per_image(model: torch.nn.Module) -> float:
    """Forward FLOPs (2 per multiply-add) of the convolutions and linear layers for one image."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * kernel * output.numel()
        elif isinstance(module, torch.nn.Linear):
            total += 2 * module.in_features * output.numel() // output.shape[-1] * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                        torch.nn.Linear))]
    try:
        with torch.inference_mode():
            was = model.training
            model.eval()
            model(torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long))
            model.train(was)
    finally:
        for hook in hooks:
            hook.remove()
    return float(total)


def cpu_info() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo ({} elsewhere)."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def peak_gflops(threads: int | None = None) -> tuple[float, str]:
    """(fp32 peak GFLOP/s of ``threads`` cores, how it was worked out)."""
    info = cpu_info()
    cores = threads or os.cpu_count() or 1
    ghz = float(info.get("cpu MHz", "0") or 0) / 1000 or 2.0
    flags = set(info.get("flags", "").split())
    intel_avx512 = "avx512f" in flags and info.get("vendor_id") == "GenuineIntel"
    lanes = 16 if intel_avx512 else 8 if "avx2" in flags else 4
    per_cycle = 2 * lanes * (2 if "fma" in flags or intel_avx512 else 1)  # 2 units x lanes x (multiply + add)
    return cores * ghz * per_cycle, (f"{cores} core(s) x {ghz:.2f} GHz x {per_cycle} fp32 FLOPs per cycle "
                                     f"({'AVX-512' if intel_avx512 else 'AVX2' if lanes == 8 else 'SSE'}"
                                     f"{' + FMA' if per_cycle == 4 * lanes else ''}, two vector units)")


def efficiency(gflops: float, threads: int | None = None) -> str:
    """``gflops`` as a share of the peak of ``threads`` cores."""
    peak, _ = peak_gflops(threads)
    return f"{gflops:.1f} GFLOP/s, {100 * gflops / peak:.0f}% of this CPU's {peak:.0f} GFLOP/s peak"
