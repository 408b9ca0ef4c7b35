"""HTTP load on ``digitsum serve``: latency percentiles, throughput, errors and server CPU per request.

The server runs as its own process (``python -m digitsum serve --port 0``) on 127.0.0.1, exactly
as a user starts it. The client keeps ``concurrency`` keep-alive connections, each sending
POST /api/predict requests one after another until ``requests`` have been answered; it is a
minimal HTTP/1.1 client on asyncio streams (as load tools such as wrk are), so that the cores it
shares with the server go to the server rather than to the client's own request building.
Each request posts a real MNIST test digit as a PNG with a number 0-9, in two sizes: 28x28 (MNIST
itself) and 280x280 dark ink on white (what the drawing page sends: the server crops, inverts and
scales it). A third row runs the server with ``--max-batch 1`` (one model call per request) to
show what micro-batching buys. Latency runs from a request's first byte sent to its last byte
received; the first ``WARMUP`` requests of each row are not counted. Server CPU is the server
process's user + system time over the timed requests (Linux), a figure that holds up on a busy
machine where wall-clock latency does not.

    python benchmarks/bench_serve.py [--quick] [--requests N] [--concurrency C] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitsum.data import load_mnist

WARMUP = 50
IMAGES = 200  # distinct test digits cycled through
BOUNDARY = "digitsum-bench"
QUICK = {"requests": 200, "concurrency": 8}  # a smoke run, not a measurement
TARGET = "0 errors and p99 at most 50 ms, 16 requests in flight on 2 cores"  # issue 4


def png_bytes(image28: np.ndarray, side: int) -> bytes:
    """A uint8 (28, 28) MNIST digit as PNG bytes: as is (side 28) or dark-on-light, upscaled to ``side``."""
    image = Image.fromarray(image28)
    if side != 28:
        image = Image.fromarray(255 - image28).resize((side, side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def predict_request(png: bytes, number: int) -> bytes:
    """A complete POST /api/predict request (head and multipart body) as bytes."""
    body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="number"\r\n\r\n{number}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; (status, body) of its response."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status, *fields = head.split(b"\r\n")
    headers = dict(f.lower().split(b":", 1) for f in fields if b":" in f)
    return int(status.split(b" ", 2)[1]), await reader.readexactly(int(headers[b"content-length"]))


def start_server(checkpoint: str | None, extra: list[str]) -> tuple[subprocess.Popen, str, int]:
    """A ``digitsum serve`` process on a free port: (process, host, port) once /healthz answers."""
    import httpx

    command = [sys.executable, "-m", "digitsum", "serve", "--port", "0", *extra]
    command += ["--checkpoint", checkpoint] if checkpoint else []
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    line = server.stdout.readline()  # "digitsum serve: http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    if "http://" not in line:
        server.wait()
        log.seek(0)
        raise RuntimeError(f"digitsum serve did not start: {log.read().strip()}")
    host, port = line.split()[2].removeprefix("http://").rstrip("/").rsplit(":", 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200:
                return server, host, int(port)
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"digitsum serve on port {port} did not answer /healthz within 60 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(host: str, port: int, bodies: list[tuple[bytes, int]], requests: int, concurrency: int) -> dict:
    """Send ``requests`` requests over ``concurrency`` connections: latencies (s), errors, digits read right."""
    latencies, errors, right = [], [], 0
    todo = iter(range(requests))

    async def connection() -> None:
        nonlocal right
        reader, writer = await asyncio.open_connection(host, port)
        for i in todo:
            request, label = bodies[i % len(bodies)]
            start = time.perf_counter()
            try:
                status, body = await exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as error:
                errors.append(type(error).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"HTTP {status}")
            else:
                right += json.loads(body)["digit"] == label
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors, "right": right, "seconds": time.perf_counter() - start}


def measure(server: subprocess.Popen, host: str, port: int, bodies, requests: int, concurrency: int) -> dict:
    """Warm up, then one timed load: the figures of one table row."""
    asyncio.run(load(host, port, bodies, WARMUP, concurrency))
    cpu = cpu_seconds(server.pid)
    r = asyncio.run(load(host, port, bodies, requests, concurrency))
    ms = 1000 * np.array(r["latencies"] or [np.nan])
    return {"p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "rps": requests / r["seconds"],
            "errors": len(r["errors"]), "kinds": sorted(set(r["errors"])), "accuracy": r["right"] / requests,
            "cpu_ms": 1000 * (cpu_seconds(server.pid) - cpu) / requests}


def run(quick: bool = False, requests: int = 2000, concurrency: int = 16, checkpoint: str | None = None,
        data_dir: str | None = None) -> str:
    """Run the load test against fresh servers and return its Markdown section."""
    if quick:
        requests, concurrency = QUICK["requests"], QUICK["concurrency"]
    test = load_mnist(data_dir)["test"]
    images, labels = test.images[:IMAGES].numpy(), test.labels[:IMAGES].tolist()
    cases = [("28x28 MNIST", 28, []), ("280x280 dark on white (page-sized)", 280, []),
             ("28x28 MNIST, `--max-batch 1`", 28, ["--max-batch", "1"])]
    rows = []
    for name, side, extra in cases:
        pngs = [png_bytes(image, side) for image in images]
        bodies = [(predict_request(p, i % 10), labels[i]) for i, p in enumerate(pngs)]
        server, host, port = start_server(checkpoint, extra)
        try:
            rows.append((name, len(pngs[0]), measure(server, host, port, bodies, requests, concurrency)))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return render(rows, requests, concurrency, checkpoint, quick)


def render(rows, requests: int, concurrency: int, checkpoint: str | None, quick: bool) -> str:
    flags = " --quick" if quick else f" --requests {requests} --concurrency {concurrency}"
    flags += f" --checkpoint {checkpoint}" if checkpoint else ""
    lines = [
        "## HTTP serving (`digitsum serve`)",
        "",
        f"`python benchmarks/bench_serve.py{flags}`: per row a fresh server, {WARMUP} warm-up requests, then "
        f"{requests} POST /api/predict requests with {concurrency} in flight; server and client on the same "
        f"{os.cpu_count()}-core machine ({'bundled model' if checkpoint is None else 'checkpoint ' + checkpoint}). "
        f"Target: {TARGET}.",
        "",
        "| image sent | PNG bytes | p50 ms | p99 ms | requests/s | server CPU ms/request | errors | digits right |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, size, m in rows:
        errors = f"{m['errors']}" + (f" ({', '.join(m['kinds'])})" if m["kinds"] else "")
        lines.append(f"| {name} | {size} | {m['p50']:.1f} | {m['p99']:.1f} | {m['rps']:.0f} | {m['cpu_ms']:.2f} | "
                     f"{errors} | {100 * m['accuracy']:.1f}% |")
    if quick:
        lines += ["", "_Quick run: a smoke test at tiny size, not a measurement._"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from digitsum.cli.common import add_checkpoint
    from run_all import add_bench_flags

    parser = add_bench_flags(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    add_checkpoint(parser)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per row (default: 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default: 16)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    print(run(args.quick, args.requests, args.concurrency, args.checkpoint, args.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
