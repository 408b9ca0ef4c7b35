"""The HTTP API of ``digitsum serve``: predictions on real MNIST digits, every bad input, concurrency."""

from __future__ import annotations

import io
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitsum.cli import main
from digitsum.errors import ImageError
from digitsum.predict import Predictor, load_model
from digitsum.preprocess import open_image, to_mnist
from digitsum.serve import create_app
from digitsum.serve.batcher import MicroBatcher
from digitsum.serve.limits import RequestLimits
from helpers import load_script, png_header, serving


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def post(client, data: bytes | None, number: str | None):
    """POST /api/predict as multipart, leaving out the image or the number when None."""
    files = {"image": ("digit.png", data, "image/png")} if data is not None else {}
    if number is not None:
        files["number"] = (None, number)  # a plain form field
    return client.post("/api/predict", files=files)


@pytest.fixture(scope="module")
def predictor(small_run) -> Predictor:
    return load_model(small_run)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor)) as c:
        yield c


@pytest.fixture(scope="module")
def digits(mnist):
    """The first 64 MNIST test digits and their labels."""
    return mnist["test"].images[:64].numpy(), mnist["test"].labels[:64].tolist()


def test_predict_reads_real_mnist_digits_and_adds_the_number(client, digits):
    images, labels = digits
    answers = [post(client, png(images[i]), str(i % 10)).json() for i in range(40)]
    right = sum(a["digit"] == labels[i] for i, a in enumerate(answers))
    assert right >= 38
    assert sum(a["sum"] == labels[i] + i % 10 for i, a in enumerate(answers)) >= 37


def test_predict_answers_what_the_library_predicts_for_the_same_bytes(client, predictor, digits):
    data = png(digits[0][3])
    body = post(client, data, "4").json()
    expected = predictor.predict(data, 4)
    assert (body["digit"], body["sum"]) == (expected.digit, expected.sum)
    np.testing.assert_allclose(body["digit_probabilities"], expected.digit_probabilities, rtol=1e-6)
    np.testing.assert_allclose(body["sum_probabilities"], expected.sum_probabilities, rtol=1e-6)


def test_predict_returns_probabilities_and_the_image_the_model_saw(client, digits):
    big = Image.fromarray(255 - digits[0][0]).resize((280, 280)).convert("RGB")  # dark ink on white, like paper
    out = io.BytesIO()
    big.save(out, "JPEG")
    response = post(client, out.getvalue(), "9")
    assert response.status_code == 200
    body = response.json()
    assert len(body["digit_probabilities"]) == 10 and len(body["sum_probabilities"]) == 19
    assert sum(body["digit_probabilities"]) == pytest.approx(1) and sum(body["sum_probabilities"]) == pytest.approx(1)
    assert body["digit"] == int(np.argmax(body["digit_probabilities"])) == digits[1][0]
    assert body["sum"] == int(np.argmax(body["sum_probabilities"]))
    seen = np.array(body["image"], dtype=np.uint8)  # (28, 28)
    np.testing.assert_array_equal(seen, to_mnist(open_image(out.getvalue())))
    assert seen[0].max() == 0 and seen.max() == 255  # light ink on black, as MNIST


@pytest.mark.parametrize("data, words", [
    (b"this is not an image", "not an image"),
    (b"", "empty"),
    (None, "missing file field 'image'"),
    (png_header(8000, 8000), "megapixels"),
    (png_header(100_000, 100_000), "megapixels"),
    (png(np.zeros((64, 64), np.uint8)), "no ink"),
    (png(np.full((64, 64), 255, np.uint8)), "no ink"),
], ids=["not-an-image", "empty-file", "no-image", "64-megapixels", "10-gigapixels", "blank-black", "blank-white"])
def test_unusable_image_is_400_with_a_reason(client, data, words):
    response = post(client, data, "3")
    assert response.status_code == 400
    assert words in response.json()["error"]


def test_truncated_image_is_400(client, digits):
    data = png(np.kron(digits[0][0], np.ones((8, 8), np.uint8)))  # 224x224: several kB of pixel data
    response = post(client, data[: len(data) // 2], "3")
    assert response.status_code == 400
    assert "truncated" in response.json()["error"]


def test_image_sent_as_text_or_body_not_multipart_is_400(client):
    as_text = client.post("/api/predict", data={"image": "a digit", "number": "1"})
    as_json = client.post("/api/predict", json={"image": "a digit", "number": 1})
    assert as_text.status_code == as_json.status_code == 400
    assert "multipart/form-data" in as_json.json()["error"]


@pytest.mark.parametrize("number", [None, "", "10", "-1", "3.5", "seven", "1e1"])
def test_missing_or_bad_number_is_422(client, digits, number):
    response = post(client, png(digits[0][0]), number)
    assert response.status_code == 422
    assert "0-9" in response.json()["error"]


@pytest.fixture(scope="module")
def small_limit_client(predictor):
    with TestClient(create_app(predictor, max_body_bytes=10_000)) as c:
        yield c


def test_body_over_the_limit_is_413_and_one_under_it_is_answered(small_limit_client, digits):
    too_big = png(np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8))  # ~16 kB of noise
    response = post(small_limit_client, too_big, "1")
    assert response.status_code == 413
    assert "0.01 MB" in response.json()["error"]
    assert post(small_limit_client, png(digits[0][0]), "1").status_code == 200


def stream(app, chunks: list[bytes]) -> tuple[list[dict], int]:
    """Run ``app`` on a POST whose body arrives in ``chunks`` with no Content-Length: (messages sent, chunks read)."""
    taken, sent = [], []

    async def receive():
        taken.append(len(taken))
        if len(taken) > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[len(taken) - 1], "more_body": len(taken) < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "raw_path": b"/api/predict",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "headers": [(b"content-type", b"multipart/form-data; boundary=b")], "server": ("test", 80)}
    anyio.run(app, scope, receive, send)
    return sent, min(len(taken), len(chunks))


HEAD = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'


def test_a_streamed_body_over_the_limit_is_read_to_its_end_then_refused_with_413(predictor):
    """Without Content-Length, the bytes are counted; past the limit the rest is read and discarded, so that a
    client writing its whole body before reading gets the 413 (not a reset connection), and the connection closes."""
    app = create_app(predictor, max_body_bytes=10_000)
    sent, read = stream(app, [HEAD] + [b"x" * 1000] * 1000)  # 1 MB in 1 kB chunks
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert read == 1001  # all of it: far below the drain bound


def test_draining_a_refused_body_stops_at_its_bound():
    async def reads_everything(scope, receive, send):  # an app that wants the whole body, as a form parser does
        while (await receive()).get("more_body"):
            pass

    app = RequestLimits(reads_everything, max_bytes=10_000, drain_bytes=50_000)
    sent, read = stream(app, [HEAD] + [b"x" * 1000] * 1000)
    assert sent[0]["status"] == 413
    assert 50 <= read <= 53  # about 50 kB read in all, then the connection is given up


def test_healthz_and_info(client, predictor):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/info").json()
    assert info["config"] == predictor.config and info["metrics"] == predictor.metrics
    assert info["metrics"]["digit_accuracy"] > 0.9


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<canvas" in page and "api/predict" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)  # no external assets
    assert "@import" not in page and "<script src" not in page


def test_unknown_route_is_404_json(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "error" in response.json()


def test_concurrent_requests_each_get_their_own_answer(client, predictor, digits):
    images, _ = digits
    jobs = [(png(images[i]), (3 * i) % 10) for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda job: post(client, job[0], str(job[1])), jobs))
    assert [r.status_code for r in responses] == [200] * len(jobs)
    expected = predictor.predict_batch([data for data, _ in jobs], [n for _, n in jobs])
    assert [(r.json()["digit"], r.json()["sum"]) for r in responses] == [(p.digit, p.sum) for p in expected]


class GatedPredictor(Predictor):
    """The real predictor, but each model call waits for ``release`` and records its batch size."""

    def __init__(self, predictor: Predictor):
        super().__init__(predictor.backend, predictor.config, predictor.metrics)
        self.entered, self.release, self.batches = threading.Event(), threading.Event(), []

    def predict_arrays(self, images28, numbers, batch_size=256):
        self.batches.append(len(images28))
        self.entered.set()
        assert self.release.wait(30)
        return super().predict_arrays(images28, numbers, batch_size)


def test_inference_does_not_block_the_event_loop(predictor, digits):
    gated = GatedPredictor(predictor)
    with TestClient(create_app(gated)) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, client, png(digits[0][0]), "2")
        assert gated.entered.wait(30)
        assert client.get("/healthz").status_code == 200  # answered while the model call is stuck
        gated.release.set()
        assert pending.result(30).json()["digit"] == digits[1][0]


def test_requests_queued_during_a_model_call_share_the_next_one(predictor, digits):
    images, labels = digits
    gated = GatedPredictor(predictor)
    batcher = MicroBatcher(gated, max_batch=4)
    first = batcher.submit(images[0], 0)
    assert gated.entered.wait(30)
    waiting = [batcher.submit(images[i], i % 10) for i in range(1, 7)]
    waiting[2].cancel()  # a client that went away: skipped, not answered
    gated.release.set()
    answers = [first.result(30)] + [f.result(30) for i, f in enumerate(waiting) if i != 2]
    batcher.close()
    assert gated.batches == [1, 3, 2]  # 6 queued, max 4 taken at once, the cancelled one dropped
    assert [a.sum - a.digit for a in answers] == [0, 1, 2, 4, 5, 6]
    assert sum(a.digit == labels[i] for i, a in zip([0, 1, 2, 4, 5, 6], answers, strict=True)) >= 5


def test_the_batcher_decodes_image_bytes_and_fails_only_the_unreadable_one(predictor, digits):
    images, _ = digits
    batcher = MicroBatcher(predictor)
    try:
        drawn = Image.fromarray(255 - images[5]).resize((140, 140))  # dark on light, as on paper
        out = io.BytesIO()
        drawn.save(out, "PNG")
        jobs = [(out.getvalue(), 3), (b"not an image at all", 4), (images[6], 5), (png_header(2, 2)[:30], 6)]
        futures = [batcher.submit(image, number) for image, number in jobs]
        answers = [f.exception(30) or f.result() for f in futures]
    finally:
        batcher.close()
    assert isinstance(answers[1], ImageError) and "not an image" in str(answers[1])
    assert isinstance(answers[3], ImageError)
    expected = predictor.predict_batch([out.getvalue(), images[6]], [3, 5])
    assert [(a.digit, a.sum) for a in (answers[0], answers[2])] == [(e.digit, e.sum) for e in expected]
    np.testing.assert_array_equal(answers[0].image, expected[0].image)  # the same 28x28 as the library makes


def test_drawings_are_decoded_on_the_inference_thread_and_photos_in_a_worker(predictor, digits, monkeypatch):
    import digitsum.serve.app as app_module
    import digitsum.serve.batcher as batcher_module
    from digitsum.preprocess import load_digit

    threads = []

    def recording(data):
        threads.append(threading.current_thread().name)
        return load_digit(data)
    monkeypatch.setattr(app_module, "load_digit", recording)
    monkeypatch.setattr(batcher_module, "load_digit", recording)
    digit = digits[0][0]
    photo = Image.fromarray(255 - digit).resize((400, 400))  # 160,000 pixels: over BATCHER_PIXELS
    out = io.BytesIO()
    photo.save(out, "JPEG")
    with TestClient(create_app(predictor)) as client:
        small, large = post(client, png(digit), "1"), post(client, out.getvalue(), "1")
    assert small.status_code == large.status_code == 200
    assert small.json()["digit"] == large.json()["digit"] == digits[1][0]
    assert 28 * 28 <= app_module.BATCHER_PIXELS < 400 * 400 and threads[0] == "digitsum-inference"
    assert threads[1] not in ("digitsum-inference", "MainThread")  # anyio's worker threads


def test_cli_bad_checkpoint_is_one_line_before_listening(capsys, tmp_path):
    assert main(["serve", "--checkpoint", str(tmp_path / "missing"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("digitsum serve: error: checkpoint") and err.count("\n") == 1


def test_cli_port_in_use_is_one_line(capsys, small_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(small_run), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1


def worker_processes(pid: int) -> list[int]:
    """The ``--workers`` processes uvicorn's supervisor spawned under server ``pid`` (Linux's /proc)."""
    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_workers_answer_from_processes_of_their_own_and_stop_on_ctrl_c(small_run, predictor, digits, tmp_path):
    images, labels = digits
    pids, jobs = [], [(png(images[i]), i % 10) for i in range(24)]
    with serving(small_run, tmp_path / "serve.log", "--workers", "2", pids=pids) as url:
        workers = worker_processes(pids[0])
        with httpx.Client(base_url=url) as http, ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: http.post("/api/predict", files={"image": ("d.png", job[0])},
                                                          data={"number": str(job[1])}), jobs))
    assert len(workers) == 2
    assert [a.status_code for a in answers] == [200] * len(jobs)
    expected = predictor.predict_batch([data for data, _ in jobs], [n for _, n in jobs])
    assert [(a.json()["digit"], a.json()["sum"]) for a in answers] == [(e.digit, e.sum) for e in expected]
    assert not any(Path(f"/proc/{w}").exists() for w in workers)  # Ctrl-C stopped the workers with the server


def test_cli_workers_with_collect_is_one_line(capsys, small_run, tmp_path):
    assert main(["serve", "--checkpoint", str(small_run), "--workers", "2", "--collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--collect keeps drawings from one process" in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing made


def test_load_benchmark_runs_against_a_real_server_without_errors(small_run, mnist_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_serve

    section = bench_serve.run(quick=True, checkpoint=str(small_run), data_dir=str(mnist_dir))
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith(("| image sent", "| ---", "| |"))}
    quick_cases = [name for name, _, extra in bench_serve.CASES if extra != bench_serve.ONNX]
    assert list(rows) == quick_cases  # every row but the onnx ones, which a quick run leaves out
    for row in rows.values():
        assert row[6].strip() == "0"  # errors
        assert float(row[3].split()[0]) > 0  # requests/s
    memory = {name: float(row[5]) for name, row in rows.items()}  # MB, the server with its workers
    assert min(memory[n] for n in rows if "--workers 2" in n) > 1.5 * max(memory[n] for n in rows if "workers" not in n)
    assert "Endurance: 300 requests" in section and "in flight after 500 warm-up requests: 0 errors" in section
    assert "5 clients each trickling" in section and "ordinary requests got 0 errors" in section
    assert "5 408" in section  # every trickling client was answered 408 and closed by the server


@pytest.mark.parametrize("orjson", ["as installed", "missing"])
def test_the_json_body_holds_the_answer_whichever_encoder_writes_it(predictor, digits, monkeypatch, orjson):
    """The app writes its answers with orjson when it is installed, else with the stdlib's json: the same values."""
    import json
    import sys

    from digitsum.answers import answer_json
    from digitsum.serve.app import json_encoder

    if orjson == "missing":
        monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` now raises ImportError
    encode = json_encoder()
    for p in predictor.predict_arrays(digits[0][:8], list(range(8))):
        body = json.loads(encode(p))
        assert body == json.loads(json.dumps(answer_json(p)))
        assert body["image"] == p.image.tolist() and body["digit_probabilities"] == list(p.digit_probabilities)


def test_what_the_page_sends_reads_as_its_whole_pad(predictor, mnist):
    """The page sends its drawing's ink box scaled to at most 64 pixels a side (user_style.page_picture replicates
    index.html's picture()), not its whole 280x280 pad: the model sees nearly the same 28x28 and reads the same."""
    style = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "user_style.py")
    images = mnist["test"].images[:100].numpy()
    pads = [style.page_pad(x) for x in images]
    boxes = [style.page_picture(pad) for pad in pads]
    assert all(max(box.size) <= style.SEND_SIDE + 2 * style.MARGIN for box in boxes)
    numbers = [i % 10 for i in range(len(images))]
    whole = predictor.predict_batch([png(np.asarray(pad)) for pad in pads], numbers)
    sent = predictor.predict_batch([png(np.asarray(box)) for box in boxes], numbers)
    same = [(a.digit, a.sum) == (b.digit, b.sum) for a, b in zip(whole, sent, strict=True)]
    assert sum(same) >= 98
    difference = [np.abs(a.image.astype(int) - b.image).mean() for a, b in zip(whole, sent, strict=True)]
    assert np.mean(difference) < 4  # grey levels 0-255
