"""HTTP load on ``digitsum serve``: latency percentiles, throughput, errors and server CPU per request.

The server runs as its own process (``python -m digitsum serve --port 0``) on 127.0.0.1, exactly as
a user starts it. The client keeps ``concurrency`` keep-alive connections, each sending POST
/api/predict requests one after another until ``requests`` have been answered; it is a minimal
HTTP/1.1 client on asyncio streams (as load tools such as wrk are), so that the cores it shares with
the server go to the server rather than to the client's own request building. Each request posts a
real MNIST test digit as a PNG with a number 0-9: 28x28 (MNIST itself); 280x280 dark ink on white (a
page-sized drawing from any client: the server crops, inverts and scales it); the drawing page's
whole 280x280 pad, light ink on black RGBA (what the page sent until it sent its ink box); and what
the page sends now, the ink's box with a 4-pixel black margin scaled down to at most 64 pixels a
side (``user_style.page_picture``, a replica of index.html's ``picture()``; Chromium's resampling
differs a little from Pillow's). A row runs the server with ``--max-batch 1`` (one model call
per request) to show what micro-batching buys, two with ``--workers 2`` (two server processes,
each with its own model), and, in a full run, two with ``--runtime onnx`` (the checkpoint's ONNX
export on onnxruntime, made into the user cache before the first server starts). Server CPU and
memory (Pss, shared pages divided among the processes sharing them, after each round) count the
server's workers with it. Latency runs from a request's first byte sent to its last byte received;
the first ``WARMUP`` requests of each row are not counted. Server CPU is the server's user + system
time over the timed requests (Linux), a figure that holds up on a busy machine where wall-clock
latency does not.

    python benchmarks/bench_serve.py [--quick] [--requests N] [--concurrency C] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitsum.data import load_mnist
from summary import spread
from user_style import SEND_SIDE, page_pad, page_picture

WARMUP = 50
IMAGES = 200  # distinct test digits cycled through
BOUNDARY = "digitsum-bench"
ROUNDS = 3
FULL = {"endurance": 20_000, "endurance_concurrency": 32, "slow_clients": 50, "slow_seconds": 8, "slow_requests": 300,
        "body_timeout": 5}
QUICK = {"requests": 200, "concurrency": 8, "endurance": 300, "endurance_concurrency": 8, "slow_clients": 5,
         "slow_seconds": 2, "slow_requests": 20, "body_timeout": 1}  # a smoke run, not a measurement
TARGET = "0 errors and p99 at most 50 ms, 16 requests in flight on 2 cores, page-sized drawings included"


def png_bytes(image28: np.ndarray, side: int) -> bytes:
    """A uint8 (28, 28) MNIST digit as PNG bytes: as is (side 28) or dark-on-light, upscaled to ``side``."""
    image = Image.fromarray(image28)
    if side != 28:
        image = Image.fromarray(255 - image28).resize((side, side), Image.Resampling.BILINEAR)
    return encode(image)


def encode(image: Image.Image) -> bytes:
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


def start_server(checkpoint: str | None, extra: list[str], launcher: list[str] | None = None,
                 ) -> tuple[subprocess.Popen, str, int]:
    """A ``digitsum serve`` process on a free port: (process, host, port) once /healthz answers. ``launcher``
    runs the command line (default ``python -m digitsum``; a probe's replaces a part of the server)."""
    import httpx

    command = [*(launcher or [sys.executable, "-m", "digitsum"]), "serve", "--port", "0", *extra]
    command += ["--checkpoint", checkpoint] if checkpoint else []
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1
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
                if workers > 1:
                    settled(server, workers)
                return server, host, int(port)
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"digitsum serve on port {port} did not answer /healthz within 60 s")


def processes(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's worker processes with ``--workers``), Linux; [pid] elsewhere."""
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        try:
            todo += [int(c) for t in Path(f"/proc/{out[-1]}/task").iterdir()
                     for c in (t / "children").read_text().split()]
        except OSError:
            pass
    return out


def stat_seconds(stat: Path) -> float:
    """User + system CPU seconds in a /proc ``stat`` file, of a process or of one of its threads (OSError when
    it is gone)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of a process and its descendants (Linux; NaN elsewhere)."""
    total = 0.0
    for p in processes(pid):
        try:
            total += stat_seconds(Path(f"/proc/{p}/stat"))
        except OSError:
            if p == pid:
                return float("nan")
    return total


def settled(server: subprocess.Popen, workers: int, timeout: float = 120) -> None:
    """Wait until a server with ``workers`` worker processes has them all started and idle: each has stopped
    using CPU (a worker that is still importing torch or loading its model is busy), so that no timed request
    waits for a worker to come up. Polled, with a limit on the wait only."""
    deadline = time.monotonic() + timeout
    before = None
    while time.monotonic() < deadline:
        children = processes(server.pid)[1:]
        now = {p: cpu_seconds(p) for p in children}
        if before is not None and len(children) >= workers and now.keys() == before.keys() and \
                all(now[p] - before[p] < 0.05 for p in now):
            return
        before = now
        time.sleep(0.5)
    raise RuntimeError(f"digitsum serve's {workers} workers did not all start within {timeout:g} s")


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


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def memory_mb(pid: int) -> float:
    """The proportional set size (Pss: shared pages divided among the processes sharing them) of a process and
    its descendants in MB, what a server and its workers take of the machine's memory (Linux; NaN elsewhere)."""
    total = 0.0
    for p in processes(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            return float("nan")
    return total


def measure(server: subprocess.Popen, host: str, port: int, bodies, requests: int, concurrency: int) -> dict:
    """Warm up, then one timed load: the figures of one round."""
    asyncio.run(load(host, port, bodies, WARMUP, concurrency))
    cpu = cpu_seconds(server.pid)
    r = asyncio.run(load(host, port, bodies, requests, concurrency))
    ms = 1000 * np.array(r["latencies"] or [np.nan])
    return {"p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "rps": requests / r["seconds"],
            "errors": len(r["errors"]), "kinds": sorted(set(r["errors"])), "accuracy": r["right"] / requests,
            "cpu_ms": 1000 * (cpu_seconds(server.pid) - cpu) / requests, "memory": memory_mb(server.pid)}


def endurance(server: subprocess.Popen, host: str, port: int, bodies, requests: int, concurrency: int) -> dict:
    """A long load after warm-up: errors, and the server's resident memory before and after it."""
    asyncio.run(load(host, port, bodies, 10 * WARMUP, concurrency))
    before = rss_mb(server.pid)
    r = asyncio.run(load(host, port, bodies, requests, concurrency))
    return {"requests": requests, "errors": len(r["errors"]), "kinds": sorted(set(r["errors"])),
            "rss_before": before, "rss_after": rss_mb(server.pid), "rps": requests / r["seconds"]}


async def trickle(host: str, port: int, seconds: float) -> str:
    """A client that sends a request's head, then its body one byte every 0.1 s: how the server ended it."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                 b"boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\nContent-Disposition: form-data; "
                 b'name="image"; filename="digit.png"\r\n\r\n')  # then the file, one byte at a time
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            writer.write(b"x")
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 0.1)
                return head.split(b" ")[1].decode()  # the server answered (408): the status
            except asyncio.TimeoutError:
                continue
        return "still open"
    except (OSError, asyncio.IncompleteReadError):
        return "closed"
    finally:
        writer.close()


async def slow_clients(host: str, port: int, bodies, clients: int, seconds: float, requests: int) -> dict:
    """``clients`` trickling bodies for ``seconds``; meanwhile /healthz every 50 ms and ``requests`` requests."""
    probes: list[float] = []

    async def probe() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection(host, port)
            start = time.perf_counter()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await reader.read()
            probes.append(1000 * (time.perf_counter() - start))
            writer.close()
            await asyncio.sleep(0.05)

    results = await asyncio.gather(*(trickle(host, port, seconds) for _ in range(clients)), probe(),
                                   load(host, port, bodies, requests, 4))
    ends, normal = results[:clients], results[-1]
    return {"clients": clients, "ends": {end: ends.count(end) for end in sorted(set(ends))},
            "healthz_p50": float(np.percentile(probes, 50)), "healthz_max": max(probes), "probes": len(probes),
            "requests": requests, "errors": len(normal["errors"])}


# (row, the PNG a test digit is sent as, server flags)
def mnist_png(image28: np.ndarray) -> bytes:
    """A test digit as MNIST has it, 28x28."""
    return png_bytes(image28, 28)


def ink_box_png(image28: np.ndarray) -> bytes:
    """A test digit as the drawing page sends it: its ink's box."""
    return encode(page_picture(page_pad(image28)))


ONNX = ["--runtime", "onnx"]  # rows of a full run only: their server runs the checkpoint's export, made first
INK_BOX = f"the page's ink box, at most {SEND_SIDE} px"
CASES = [("28x28 MNIST", mnist_png, []),
         ("280x280 dark on white (page-sized, any client)", lambda x: png_bytes(x, 280), []),
         ("the page's whole pad, 280x280 RGBA light on black (sent before)", lambda x: encode(page_pad(x)), []),
         (f"{INK_BOX} (sent now)", ink_box_png, []),
         ("28x28 MNIST, `--max-batch 1`", mnist_png, ["--max-batch", "1"]),
         ("28x28 MNIST, `--workers 2`", mnist_png, ["--workers", "2"]),
         (f"{INK_BOX}, `--workers 2`", ink_box_png, ["--workers", "2"]),
         ("28x28 MNIST, `--runtime onnx`", mnist_png, ONNX),
         (f"{INK_BOX}, `--runtime onnx`", ink_box_png, ONNX)]


def run(quick: bool = False, requests: int = 2000, concurrency: int = 16, checkpoint: str | None = None,
        data_dir: str | None = None, rounds: int = ROUNDS) -> str:
    """Run the load tests against fresh servers and return the Markdown section."""
    size = QUICK if quick else FULL
    if quick:
        requests, concurrency, rounds = QUICK["requests"], QUICK["concurrency"], 1
    test = load_mnist(data_dir, splits=("test",))["test"]
    images, labels = test.images[:IMAGES].numpy(), test.labels[:IMAGES].tolist()

    def bodies_of(kind) -> list:
        pngs = [kind(image) for image in images]
        bodies = [(predict_request(p, i % 10), labels[i]) for i, p in enumerate(pngs)]
        return bodies, round(np.mean([len(p) for p in pngs]))

    rows = []
    if not quick:
        from digitsum.export import cached_export

        cached_export(checkpoint)  # before any server starts: none of them makes it, and none's memory holds it
    for name, kind, extra in CASES:
        if quick and extra == ONNX:
            continue
        bodies, png_size = bodies_of(kind)
        server, host, port = start_server(checkpoint, extra)
        try:
            rows.append((name, png_size, [measure(server, host, port, bodies, requests, concurrency)
                                          for _ in range(rounds)]))
        finally:
            stop_server(server)
    bodies, _ = bodies_of(CASES[0][1])
    server, host, port = start_server(checkpoint, ["--body-timeout", str(size["body_timeout"])])
    try:
        long_run = endurance(server, host, port, bodies, size["endurance"], size["endurance_concurrency"])
        slow = asyncio.run(slow_clients(host, port, bodies, size["slow_clients"], size["slow_seconds"],
                                        size["slow_requests"]))
    finally:
        stop_server(server)
    return render(rows, long_run, slow, requests, concurrency, rounds, checkpoint, quick, size)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def render(rows, long_run: dict, slow: dict, requests: int, concurrency: int, rounds: int, checkpoint: str | None,
           quick: bool, size: dict) -> str:
    flags = " --quick" if quick else f" --requests {requests} --concurrency {concurrency}"
    flags += f" --checkpoint {checkpoint}" if checkpoint else ""
    lines = [
        "## HTTP serving (`digitsum serve`)",
        "",
        f"`python benchmarks/bench_serve.py{flags}`: per row a fresh server, {WARMUP} warm-up requests, then "
        f"{rounds} round(s) of {requests} POST /api/predict requests with {concurrency} in flight; server and client "
        f"on the same {os.cpu_count()}-core machine "
        f"({'bundled model' if checkpoint is None else 'checkpoint ' + checkpoint}). Latencies and rates are the "
        f"median of the rounds (min-max). Target: {TARGET}.",
        "",
        "| image sent | PNG bytes (mean) | p50 ms | p99 ms | requests/s | server CPU ms/request | server memory MB "
        "| errors | digits right |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, png_size, measured in rows:
        errors = sum(m["errors"] for m in measured)
        kinds = sorted({k for m in measured for k in m["kinds"]})
        shown = f"{errors}" + (f" ({', '.join(kinds)})" if kinds else "")
        accuracy = statistics.mean(m["accuracy"] for m in measured)
        lines.append(f"| {name} | {png_size} | {spread([m['p50'] for m in measured])} | "
                     f"{spread([m['p99'] for m in measured])} | {spread([m['rps'] for m in measured], '{:.0f}')} | "
                     f"{spread([m['cpu_ms'] for m in measured], '{:.2f}')} | "
                     f"{statistics.median(m['memory'] for m in measured):.0f} | {shown} | {100 * accuracy:.1f}% |")
    growth = long_run["rss_after"] - long_run["rss_before"]
    ends = ", ".join(f"{count} {end}" for end, count in slow["ends"].items())
    lines += [
        "",
        f"Endurance: {long_run['requests']:,} requests of 28x28 digits with {size['endurance_concurrency']} in "
        f"flight after {10 * WARMUP} warm-up requests: {long_run['errors']} errors"
        + (f" ({', '.join(long_run['kinds'])})" if long_run["kinds"] else "")
        + f", {long_run['rps']:.0f} requests/s; the server's resident memory went from "
        f"{long_run['rss_before']:.1f} MB to {long_run['rss_after']:.1f} MB ({growth:+.1f} MB; target at most "
        "+20 MB).",
        "",
        f"Slow clients: {slow['clients']} clients each trickling a request body one byte every 0.1 s (server "
        f"`--body-timeout {size['body_timeout']}`), for {size['slow_seconds']} s. Meanwhile /healthz, probed "
        f"{slow['probes']} times, answered in {slow['healthz_p50']:.1f} ms at the median and "
        f"{slow['healthz_max']:.1f} ms at most (target: at most 100 ms), and {slow['requests']} ordinary requests "
        f"got {slow['errors']} errors. How the trickling clients ended: {ends} (408: the server answered and "
        "closed the connection).",
    ]
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
