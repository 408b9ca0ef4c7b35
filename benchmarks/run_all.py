"""Run every benchmark in this folder and write benchmarks/RESULTS.md.

Each ``benchmarks/bench_*.py``, and each of ``MEASURES`` (real handwriting, non-digits), exposes
``run(quick: bool = False) -> str`` returning a Markdown section. They run in ``ORDER`` (the
headline first), then any others by name; the results file
starts with the date, the machine, the versions and the command that produced it, and is written
atomically once every benchmark has run. A benchmark that fails is reported in its section and
makes the exit status 1; the others still run.

    python benchmarks/run_all.py                   # everything, writes benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick           # smoke run at tiny sizes, printed, nothing written
    python benchmarks/run_all.py --only profile    # one benchmark, printed
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import digitsum
from digitsum.cli.common import Parser, UsageError, add_data_dir
from digitsum.files import atomic_write_bytes
from machine import cpu_info

HERE = Path(__file__).resolve().parent
RESULTS = "RESULTS.md"  # in the benchmarks folder
# accuracy measures, not timings: no bench_
MEASURES = ("bundled", "real_handwriting", "nondigits", "choices", "compositional", "writers")
ORDER = ["bundled", "time_to_accuracy", "recipe", "choices", "compositional", "real_handwriting", "nondigits",
         "writers", "profile", "inference", "serve", "serve_profile", "distributed"]


def discover(folder: Path = HERE) -> list[str]:
    """Benchmark names (``bench_NAME.py``, or NAME.py for MEASURES) in the folder: ORDER first, then the rest."""
    found = {p.stem.removeprefix("bench_") for p in folder.glob("bench_*.py")}
    found |= {name for name in MEASURES if (folder / f"{name}.py").is_file()}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def module_name(name: str) -> str:
    return name if name in MEASURES else f"bench_{name}"


def cpu_model(info: dict[str, str] | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (``machine.cpu_info``; or what platform knows elsewhere), with its
    family, model and stepping numbers where cpuinfo gives them: a virtual machine may report only "AMD EPYC",
    and two hosts of that name a generation apart train and serve at different speeds."""
    info = cpu_info() if info is None else info
    if "model name" not in info:
        return platform.processor() or platform.machine()
    numbers = [f"{label} {info[key]}" for key, label in (("cpu family", "family"), ("model", "model"),
                                                          ("stepping", "stepping")) if info.get(key)]
    return info["model name"] + (f" ({', '.join(numbers)})" if numbers else "")


def cpu_capability() -> str:
    """The vector instructions torch's CPU kernels use here (``AVX512``, ``AVX2``, ``DEFAULT``...; lowered by
    ``ATEN_CPU_CAPABILITY``): the times, and the ratios between recipes, depend on it and on the CPU model."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch before 2.1
        return "unknown"


def version_of(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def git_commit() -> str:
    """The repository's commit, with ``+changes`` when the tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" +changes" if dirty else "")


def load_average() -> str:
    """The 1-minute load average: a busy machine makes every figure meaningless."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def header(command: str) -> str:
    """Date, machine, versions and the command, as the top of RESULTS.md."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "# digitsum benchmark results",
        "",
        f"Produced by `{command}` on {now}.",
        "",
        "| | |",
        "| --- | --- |",
        f"| machine | {cpu_model()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads, "
        f"torch CPU capability {cpu_capability()} |",
        f"| load average (1 min) at start | {load_average()} |",
        f"| Python | {platform.python_version()} |",
        f"| torch | {torch.__version__} |",
        f"| onnxruntime | {version_of('onnxruntime')} |",
        f"| digitsum | {digitsum.__version__} (commit {git_commit()}) |",
        "",
    ])


def run_one(name: str, quick: bool) -> tuple[str, bool]:
    """(Markdown section, succeeded) of benchmark ``name``, with its wall time."""
    start = time.perf_counter()
    try:
        section = importlib.import_module(module_name(name)).run(quick=quick)
    except Exception as error:  # one broken benchmark must not lose the others' figures
        return f"## {name}\n\n**FAILED**: {type(error).__name__}: {error}\n", False
    return f"{section.rstrip()}\n\n_`{module_name(name)}` took {time.perf_counter() - start:.0f} s._\n", True


def run_all(names: list[str], quick: bool, command: str, on_start=None) -> tuple[str, list[str]]:
    """The whole results document and the names of the benchmarks that failed."""
    sections, failed = [header(command)], []
    for name in names:
        if on_start:
            on_start(name)
        section, ok = run_one(name, quick)
        sections.append(section)
        if not ok:
            failed.append(name)
    sections.append(f"_Load average (1 min) at the end: {load_average()}._\n")
    return "\n".join(sections), failed


def add_bench_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every benchmark script takes, ``--quick`` and ``--data-dir``; returns ``parser``."""
    parser.add_argument("--quick", action="store_true", help="a smoke run at tiny size (not a measurement)")
    add_data_dir(parser)
    return parser


def parse_flags(parser: argparse.ArgumentParser, argv: list[str] | None,
                check: Callable[[argparse.Namespace], None] | None = None) -> argparse.Namespace | None:
    """``parser``'s flags from ``argv``, checked by ``check(args)`` (which calls ``parser.error``); None when they
    are refused, after printing the one-line error (``Parser``'s) to stderr: the caller exits 2."""
    try:
        args = parser.parse_args(argv)
        if check:
            check(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return None
    return args


def plain_main(run, description: str, argv: list[str] | None = None) -> int:
    """The command line of a benchmark that takes only ``--quick`` and ``--data-dir``; prints
    ``run(quick, data_dir)``."""
    args = add_bench_flags(argparse.ArgumentParser(description=description)).parse_args(argv)
    print(run(args.quick, args.data_dir))
    return 0


def standalone(run, description: str, argv: list[str] | None = None) -> int:
    """The command line of one benchmark script: ``--quick``, ``--data-dir``, ``--threads``; prints its section."""
    parser = add_bench_flags(Parser(prog=Path(sys.argv[0]).name, description=description))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")

    def check(args) -> None:
        if args.threads < 0:
            parser.error(f"--threads must be non-negative, got {args.threads}")

    args = parse_flags(parser, argv, check)
    if args is None:
        return 2
    print(run(args.quick, args.data_dir, args.threads))
    return 0


def checkpoint_main(run, description: str, argv: list[str] | None = None) -> int:
    """The command line of a benchmark that measures a checkpoint: ``--quick``, ``--data-dir``, ``--checkpoint``;
    prints ``run(quick, data_dir, 1, checkpoint)`` (one torch thread)."""
    from digitsum.cli.common import add_checkpoint

    parser = add_bench_flags(Parser(prog=Path(sys.argv[0]).name, description=description))
    add_checkpoint(parser)
    args = parse_flags(parser, argv)
    if args is None:
        return 2
    print(run(args.quick, args.data_dir, 1, args.checkpoint))
    return 0


def main(argv: list[str] | None = None, folder: Path = HERE) -> int:
    """Parse the flags, run the benchmarks in ``folder``, write or print the results; returns the exit status."""
    try:
        return run_from_args(argv, folder)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2


def run_from_args(argv: list[str] | None, folder: Path) -> int:
    names = discover(folder)
    parser = Parser(prog="run_all.py", description="Run digitsum's benchmarks and write benchmarks/RESULTS.md.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run at tiny sizes; printed, RESULTS.md untouched unless --output is given")
    parser.add_argument("--only", metavar="NAME", help=f"run one benchmark, printed unless --output is given "
                        f"(one of: {', '.join(names)})")
    parser.add_argument("--output", type=Path, help="write the results here (default: benchmarks/RESULTS.md for "
                        "a full run; standard output with --quick or --only)")
    parser.add_argument("--data-dir", help="folder with the MNIST files (sets DIGITSUM_DATA for every benchmark)")
    args = parser.parse_args(argv)
    if args.only:
        name = args.only.removeprefix("bench_").removesuffix(".py")
        if name not in names:
            parser.error(f"no benchmark named {args.only!r}; choose one of {', '.join(names)}")
        names = [name]
    output = args.output or (None if args.quick or args.only else folder / RESULTS)
    if output is not None and not output.parent.is_dir():
        parser.error(f"cannot write {output}: folder {output.parent} does not exist")
    if args.data_dir:
        os.environ["DIGITSUM_DATA"] = args.data_dir

    load = load_average()
    if load != "n/a" and float(load) > (os.cpu_count() or 1) / 2:
        print(f"run_all: warning: load average {load} on {os.cpu_count()} cores; the figures will not be "
              "meaningful", file=sys.stderr)
    command = shlex.join(["python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])])
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the benchmarks import each other by name
    document, failed = run_all(names, args.quick, command,
                               on_start=lambda name: print(f"run_all: {name} ...", file=sys.stderr, flush=True))
    if output is None:
        print(document)
    else:
        atomic_write_bytes(output, document.encode())
        print(f"run_all: wrote {output}", file=sys.stderr)
    if failed:
        print(f"run_all: error: {', '.join(failed)} failed; see their sections", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
