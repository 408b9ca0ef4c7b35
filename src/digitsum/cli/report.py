"""``digitsum report``: figures and a report.html page from a run directory or a checkpoint."""

from __future__ import annotations

from .common import add_data_dir

BUNDLED = "(bundled)"  # --checkpoint given without a path


def add(sub) -> None:
    p = sub.add_parser("report", help="write figures and a report.html page for a run or a checkpoint",
                       description="Learning curves, digit and sum confusion matrices, all-pairs sum accuracy per "
                       "(digit, number), a reliability diagram of both heads' probabilities (without and with the "
                       "checkpoint's calibration), test samples and the most confident mistakes, as PNG files and a "
                       "report.html page. A run still training gets its curves only.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory written by digitsum train")
    source.add_argument("--checkpoint", nargs="?", const=BUNDLED, metavar="PATH",
                        help="report on a checkpoint instead: a run directory or .safetensors file, "
                        "or the bundled model if PATH is left out")
    p.add_argument("--output", metavar="DIR",
                   help="folder for the report (default: RUN_DIR/report, or ./report with --checkpoint)")
    add_data_dir(p)
    p.set_defaults(run=run)


def print_report(report) -> None:
    """Tell the user where the report is and what it holds (also used by ``digitsum train --report``)."""
    if report.in_progress:
        print("run still in progress: learning curves only")
    count = len(report.figures)
    print(f"report written to {report.page} ({count} figure{'s' * (count != 1)}: {', '.join(report.figures)})")


def run(args) -> int:
    from ..report import report_checkpoint, report_run

    if args.checkpoint is None:
        report = report_run(args.run_dir, args.output, args.data_dir)
    else:
        path = None if args.checkpoint == BUNDLED else args.checkpoint
        report = report_checkpoint(path, args.output or "report", args.data_dir)
    print_report(report)
    return 0
