#!/usr/bin/env python
"""Execute a notebook top to bottom on a fresh kernel, as CI does, and write it back with its outputs.

    python scripts/run_notebook.py                         # examples/walkthrough.ipynb, in place
    python scripts/run_notebook.py NOTEBOOK --output OUT   # somewhere else

The notebook runs in its own folder (``examples/``) with this environment's ``DIGITSUM_DATA``.
A cell that fails stops the run: one line naming the cell and its error, exit status 1, and
nothing is written. tests/test_notebook.py runs the same function on a copy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "walkthrough.ipynb"
CELL_TIMEOUT = 600  # seconds a cell may run before the run is abandoned (a limit, not a measurement)


def execute(path: Path, output: Path) -> None:
    """Run ``path`` on a fresh python3 kernel in its folder; write the executed notebook to ``output``."""
    import subprocess

    import nbformat
    from nbclient import NotebookClient

    from digitsum.files import atomic_write_bytes

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(stderr=subprocess.DEVNULL)  # the kernel's own notices; a cell's errors come back in its outputs
    atomic_write_bytes(output, nbformat.writes(notebook).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=NOTEBOOK)
    parser.add_argument("--output", type=Path, help="where to write the executed notebook (default: in place)")
    args = parser.parse_args(argv)
    from nbclient.exceptions import CellExecutionError

    if "DIGITSUM_DATA" in os.environ:  # the kernel runs in the notebook's folder: make the path absolute
        os.environ["DIGITSUM_DATA"] = str(Path(os.environ["DIGITSUM_DATA"]).resolve())
    try:
        execute(args.notebook, args.output or args.notebook)
    except CellExecutionError as error:
        print(f"run_notebook: error: a cell failed: {str(error).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
