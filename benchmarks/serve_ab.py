"""Serving before and after a change, in one run: bench_serve's load against `digitsum serve` from two source trees.

Each round starts a server from each tree in turn (``PYTHONPATH`` set to it) and measures the
images named for it with bench_serve's ``measure`` (``--requests`` after warm-up, 16 in flight);
rounds alternate the trees, so a busy machine weighs on both alike. Prints one line per
measurement and, at the end, a Markdown table: the median of the rounds (min-max).

    python benchmarks/serve_ab.py --before ../main/src --after src[:DIR_WITH_ORJSON] [--rounds 3]

``before`` sends the page's whole pad (what index.html sent before it sent its ink box), ``after``
the ink box; both send 28x28 MNIST and 280x280 dark on white. With ``--same-images`` both send the
ink box, for a change to the server alone.
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench_serve import CASES, IMAGES, measure, predict_request, start_server, stop_server
from digitsum.data import load_mnist

KINDS = {name: kind for name, kind, extra in CASES if not extra}
MNIST, ANY_CLIENT, PAD, INK_BOX = list(KINDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="PYTHONPATH of the server before the change")
    parser.add_argument("--after", required=True, help="PYTHONPATH of the server after it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--data-dir")
    parser.add_argument("--same-images", action="store_true", help="before sends the ink box too (a server change)")
    args = parser.parse_args()
    test = load_mnist(args.data_dir, splits=("test",))["test"]
    images, labels = test.images[:IMAGES].numpy(), test.labels[:IMAGES].tolist()
    bodies = {n: [(predict_request(k(x), i % 10), labels[i]) for i, x in enumerate(images)] for n, k in KINDS.items()}
    before_sends = INK_BOX if args.same_images else PAD
    trees = {"before": (args.before, [MNIST, before_sends, ANY_CLIENT]),
             "after": (args.after, [MNIST, INK_BOX, ANY_CLIENT])}
    results: dict = {}
    for r in range(args.rounds):
        for tree, (path, rows) in trees.items():
            os.environ["PYTHONPATH"] = path
            server, host, port = start_server(None, [])
            try:
                for name in rows:
                    m = measure(server, host, port, bodies[name], args.requests, 16)
                    results.setdefault((tree, name), []).append(m)
                    print(r, tree, name, *(f"{m[k]:.2f}" for k in ("p50", "p99", "rps", "cpu_ms")), m["errors"],
                          flush=True)
            finally:
                stop_server(server)

    def spread(values, fmt="{:.1f}") -> str:
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"

    print("\n| server | image sent | p50 ms | p99 ms | requests/s | server CPU ms/request | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (tree, name), ms in results.items():
        print(f"| {tree} | {name} | {spread([m['p50'] for m in ms])} | {spread([m['p99'] for m in ms])} | "
              f"{spread([m['rps'] for m in ms], '{:.0f}')} | {spread([m['cpu_ms'] for m in ms], '{:.2f}')} | "
              f"{sum(m['errors'] for m in ms)} |")


if __name__ == "__main__":
    main()
