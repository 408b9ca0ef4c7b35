"""Where a served request's CPU goes, stage by stage, for each kind of image bench_serve sends.

In process, one request's stages one after another (the median of ``ROUNDS`` passes over the same
200 MNIST test digits, milliseconds of the thread's CPU time per request, which a busy machine
inflates far less than wall-clock time): the multipart parser (Starlette's, as the app
reads its form), decoding the PNG, preprocessing it to the 28x28 the model sees (alpha and
greyscale, the ink's box, strokes, fitting, centring), the model (per image of a batch of 16, as
the server's micro-batches are at 16 in flight), and the JSON of the answer (the stdlib's json,
and orjson when installed, which the app uses then). Then the whole app in process (ASGI calls
with 16 in flight, no sockets: the CPU time of every thread per request, framework and thread
hops included); the same app with its batcher's work moved onto the event loop's thread
(``LoopBatcher``, a probe of what the inference thread costs, not what digitsum serves); and a
real ``digitsum serve`` over HTTP (bench_serve's load, its server's CPU per request, and the
share of it on the event loop's thread; the rest is the decoding threads and the model's). What
the HTTP figure adds to the in-process app is uvicorn, the sockets and the event loop.

    python benchmarks/bench_serve_profile.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from bench_serve import (
    CASES,
    IMAGES,
    WARMUP,
    cpu_seconds,
    load,
    predict_request,
    start_server,
    stat_seconds,
    stop_server,
)
from digitsum.data import load_mnist

ROUNDS = 5
BATCH = 16  # requests in flight, and so the size of the server's micro-batches
HTTP_REQUESTS = 1500
QUICK = {"images": 20, "rounds": 1, "http": 100}


def split(request: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A raw HTTP request -> (ASGI headers, body)."""
    head, body = request.split(b"\r\n\r\n", 1)
    fields = (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    return [(name.strip().lower(), value.strip()) for name, value in fields], body


def scope(headers) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}


def receiver(body: bytes):
    """An ASGI ``receive`` that gives the whole body, then waits (a client that keeps its connection open)."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
    return receive


async def parse(headers, body: bytes) -> bytes:
    """The image's bytes, read from the multipart body by Starlette's parser as the app reads them."""
    from starlette.requests import Request

    form = await Request(scope(headers), receiver(body)).form(max_files=1, max_fields=8)
    try:
        return await form["image"].read()
    finally:
        await form.close()


def parsing(requests, rounds: int) -> float:
    """Milliseconds per request of ``parse``, on one event loop: the median of ``rounds`` passes."""
    async def passes() -> list[float]:
        times = []
        for _ in range(rounds):
            start = time.thread_time()
            for request in requests:
                await parse(*request)
            times.append(1000 * (time.thread_time() - start) / len(requests))
        return times
    return statistics.median(asyncio.run(passes()))


def per_request(work, items, rounds: int) -> float:
    """CPU milliseconds per item of ``work(item)`` (this thread's): the median of ``rounds`` passes over ``items``."""
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        for item in items:
            work(item)
        times.append(1000 * (time.thread_time() - start) / len(items))
    return statistics.median(times)


async def app_load(app, requests, n: int) -> None:
    """``n`` requests through the ASGI app with BATCH in flight."""
    todo = iter(range(n))

    async def one_at_a_time() -> None:
        for i in todo:
            answer = []

            async def send(message, answer=answer):
                answer.append(message)
            headers, body = requests[i % len(requests)]
            await app(scope(headers), receiver(body), send)
            assert answer[0]["status"] == 200, answer
    await asyncio.gather(*(one_at_a_time() for _ in range(BATCH)))


def thread_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process's main thread, of all its threads) so far (Linux; NaN elsewhere)."""
    main, total = float("nan"), 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            seconds = stat_seconds(task / "stat")
            total += seconds
            main = seconds if task.name == str(pid) else main
    except OSError:
        return float("nan"), float("nan")
    return main, total


def stages(kind, images, labels, rounds: int) -> dict:
    """The in-process figures (ms per request) of one kind of image."""
    from digitsum.answers import answer_json
    from digitsum.predict import load_model
    from digitsum.preprocess import open_image, to_mnist
    from digitsum.preprocess.digit import is_mnist_style
    from digitsum.preprocess.pixels import greyscale
    from digitsum.serve.app import json_encoder

    pngs = [kind(x) for x in images]
    requests = [split(predict_request(png, i % 10)) for i, png in enumerate(pngs)]
    decoded = [open_image(png) for png in pngs]
    predictor = load_model(None)
    digits = np.stack([to_mnist(image) for image in decoded])  # (n, 28, 28) uint8
    numbers = [i % 10 for i in range(len(digits))]
    batches = [(digits[i : i + BATCH], numbers[i : i + BATCH]) for i in range(0, len(digits), BATCH)]
    predictions = predictor.predict_arrays(digits, numbers)
    out = {"png bytes": statistics.mean(map(len, pngs)),
           "multipart": parsing(requests, rounds),
           "decode": per_request(open_image, pngs, rounds),
           "preprocess": per_request(to_mnist, decoded, rounds),
           "alpha": per_request(lambda im: None if is_mnist_style(im) else greyscale(im), decoded, rounds),
           "model": per_request(lambda b: predictor.predict_arrays(*b), batches, rounds) * len(batches) / len(digits),
           "json": per_request(json_encoder(), predictions, rounds)}
    import json

    out["stdlib json"] = per_request(lambda p: json.dumps(answer_json(p), separators=(",", ":")).encode(),
                                     predictions, rounds)
    from digitsum.serve import create_app

    out["app"] = app_cpu(create_app(predictor), requests, rounds)
    with loop_batcher():
        probe = create_app(predictor)
    out["app on the loop"] = app_cpu(probe, requests, rounds)
    return out


def app_cpu(app, requests, rounds: int) -> float:
    """The process's CPU milliseconds per request through ``app`` in process, BATCH in flight, after warm-up."""
    asyncio.run(app_load(app, requests, WARMUP))
    n = len(requests) * max(1, rounds)
    start = time.process_time()
    asyncio.run(app_load(app, requests, n))
    return 1000 * (time.process_time() - start) / n


class LoopBatcher:
    """A probe, not what digitsum serves: the micro-batcher's work (decoding, preprocessing, the model call) done
    on the event loop's own thread, a batch at a time, rather than on an inference thread beside it. Requests
    that arrive while a batch is worked on join the next one. The shipped batcher keeps the event loop free
    while the model runs (/healthz answers meanwhile); this one blocks it for a batch, and so shows what the
    second thread costs in CPU: the two threads take turns at Python's GIL around every numpy, Pillow and torch
    call that releases it."""

    def __init__(self, predictor, max_batch: int):
        self.predictor, self.max_batch = predictor, max_batch
        self.pending: list = []
        self.task: asyncio.Task | None = None

    async def predict_async(self, image, number: int):
        future = asyncio.get_running_loop().create_future()
        self.pending.append((image, number, future))
        if self.task is None:
            self.task = asyncio.ensure_future(self._serve())
        return await future

    async def _serve(self) -> None:
        from digitsum.preprocess import load_digit

        try:
            while self.pending:
                await asyncio.sleep(0)  # the requests that arrive meanwhile join this batch
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
                live = []
                for image, number, future in batch:
                    if future.done():  # cancelled while it waited: its client is gone
                        continue
                    try:
                        live.append((image if isinstance(image, np.ndarray) else load_digit(image), number, future))
                    except Exception as error:  # noqa: BLE001 - fails that request alone, as the shipped batcher
                        future.set_exception(error)
                if live:
                    predictions = self.predictor.predict_arrays(np.stack([x for x, _, _ in live]),
                                                                [n for _, n, _ in live])
                    for (_, _, future), prediction in zip(live, predictions, strict=True):
                        future.set_result(prediction)  # no await since the check above: none was cancelled since
        finally:
            self.task = None

    def close(self) -> None:
        pass


@contextmanager
def loop_batcher():
    """While it lasts, the apps ``create_app`` builds get a LoopBatcher in place of the shipped batcher."""
    import digitsum.serve.app as app_module

    shipped, app_module.MicroBatcher = app_module.MicroBatcher, LoopBatcher
    try:
        yield
    finally:
        app_module.MicroBatcher = shipped


def serve_on_the_loop(argv: list[str]) -> int:
    """``digitsum ARGV`` (``serve ...``) with a LoopBatcher: the probe's server."""
    from digitsum.cli import main

    with loop_batcher():
        return main(argv)


# The probe's server as a command line (run from benchmarks/, as this script is).
LOOP_SERVER = "import sys, bench_serve_profile; sys.exit(bench_serve_profile.serve_on_the_loop(sys.argv[1:]))"


def http(kind, images, labels, requests: int) -> dict:
    """bench_serve's load on a fresh ``digitsum serve``: its CPU per request, and its event loop thread's share;
    then the same on a server whose batcher works on the event loop (the probe): its CPU per request."""
    bodies = [(predict_request(kind(x), i % 10), labels[i]) for i, x in enumerate(images)]
    out = server_http(bodies, requests, None)
    probe = server_http(bodies, requests, [sys.executable, "-c", LOOP_SERVER])
    return {**out, "http on the loop": probe["http"], "errors": out["errors"] + probe["errors"]}


def server_http(bodies, requests: int, launcher) -> dict:
    """One server's CPU per request under bench_serve's load, and its event loop thread's share."""
    server, host, port = start_server(None, [], launcher)
    try:
        asyncio.run(load(host, port, bodies, WARMUP, BATCH))
        main0, all0 = thread_cpu(server.pid)
        whole0 = cpu_seconds(server.pid)
        r = asyncio.run(load(host, port, bodies, requests, BATCH))
        main1, all1 = thread_cpu(server.pid)
        whole = 1000 * (cpu_seconds(server.pid) - whole0) / requests
    finally:
        stop_server(server)
    return {"http": whole, "loop share": (main1 - main0) / max(all1 - all0, 1e-9), "errors": len(r["errors"])}


def run(quick: bool = False, data_dir: str | None = None) -> str:
    size = QUICK if quick else {"images": IMAGES, "rounds": ROUNDS, "http": HTTP_REQUESTS}
    torch.set_num_threads(1)  # the server's default (--threads 1)
    test = load_mnist(data_dir, splits=("test",))["test"]
    images, labels = test.images[: size["images"]].numpy(), test.labels[: size["images"]].tolist()
    kinds = [(name, kind) for name, kind, extra in CASES if not extra]
    figures = {name: {**stages(kind, images, labels, size["rounds"]), **http(kind, images, labels, size["http"])}
               for name, kind in kinds}
    return render(figures, size, quick)


ROWS = [("PNG bytes (mean)", "png bytes", "{:.0f}"), ("multipart parser (Starlette)", "multipart", "{:.3f}"),
        ("decode the PNG (Pillow)", "decode", "{:.3f}"),
        ("preprocess to the 28x28 (to_mnist)", "preprocess", "{:.3f}"),
        ("of which alpha and greyscale", "alpha", "{:.3f}"),
        (f"model, per image of a batch of {BATCH}", "model", "{:.3f}"),
        ("JSON of the answer, as the app encodes it", "json", "{:.3f}"),
        ("JSON with the stdlib's json", "stdlib json", "{:.3f}"),
        (f"the whole app in process, {BATCH} in flight (all threads)", "app", "{:.3f}"),
        ("the same, the batcher's work on the event loop instead (a probe, not served)", "app on the loop", "{:.3f}"),
        (f"`digitsum serve` over HTTP, {BATCH} in flight: server CPU", "http", "{:.3f}"),
        ("of which on the event loop's thread", "loop share", "{:.0%}"),
        ("the same, the batcher's work on the event loop instead (the probe)", "http on the loop", "{:.3f}")]


def render(figures: dict, size: dict, quick: bool) -> str:
    try:
        import orjson  # noqa: F401
        encoder = "orjson"
    except ImportError:
        encoder = "the stdlib's json (orjson is not installed)"
    names = list(figures)
    lines = ["## Where a served request's CPU goes", "",
             f"`python benchmarks/bench_serve_profile.py{' --quick' if quick else ''}`: milliseconds of CPU time per "
             f"request (the stages: this thread's; the app: all the process's threads; over HTTP: the server's), "
             f"1 torch thread (the server's default), {size['images']} MNIST test digits sent as each kind "
             f"of image of `bench_serve`; stages in process, the median of {size['rounds']} pass(es); the app in "
             f"process and over HTTP ({size['http']} requests after {WARMUP} warm-up) with {BATCH} in flight. The app "
             f"encodes its JSON with {encoder}. Errors over HTTP: "
             f"{sum(f['errors'] for f in figures.values())}.", "",
             "| stage | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for label, key, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt.format(figures[n][key]) for n in names) + " |")
    if quick:
        lines += ["", "_Quick run: a smoke test at tiny size, not a measurement._"]
    return "\n".join(lines)


if __name__ == "__main__":
    from run_all import plain_main

    sys.exit(plain_main(run, __doc__.splitlines()[0]))
