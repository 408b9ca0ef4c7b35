"""``digitsum serve --collect DIR``: labelled drawings kept under names the server picks, a bounded folder,
and a labels.csv that is whole at every moment and that ``evaluate --manifest`` reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from digitsum.predict import load_model
from digitsum.serve import create_app
from digitsum.serve.collect import Collector
from helpers import assert_one_line_error, encode, run_cli


@pytest.fixture(scope="module")
def predictor(small_run):
    return load_model(small_run)


def client(predictor, folder, max_drawings: int = 1000) -> TestClient:
    return TestClient(create_app(predictor, collector=Collector(folder, max_drawings)))


def png_of(mnist, i: int) -> bytes:
    return encode(255 - mnist["test"].images[i].numpy())  # dark on white, as a person draws


def test_a_labelled_drawing_is_kept_as_sent_under_a_name_the_server_chose(predictor, mnist, tmp_path):
    with client(predictor, tmp_path / "mine") as c:
        data = png_of(mnist, 0)
        response = c.post("/api/collect", files={"image": ("../../../etc/evil.png", data, "image/png")},
                          data={"digit": "7"})
        assert response.status_code == 200, response.text
        body = response.json()
    assert body["count"] == 1 and "/" not in body["saved"] and "evil" not in body["saved"]
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == sorted([body["saved"], "labels.csv"])
    assert (tmp_path / "mine" / body["saved"]).read_bytes() == data
    assert (tmp_path / "mine" / "labels.csv").read_text() == f"image,digit\n{body['saved']},7\n"


def test_the_collected_folder_is_a_manifest_evaluate_reads(predictor, mnist, tmp_path, capsys, small_run):
    labels = mnist["test"].labels.tolist()
    with client(predictor, tmp_path / "mine") as c:
        for i in range(12):
            assert c.post("/api/collect", files={"image": ("d.png", png_of(mnist, i))},
                          data={"digit": str(labels[i])}).status_code == 200
    code, out, err = run_cli(capsys, "evaluate", "--manifest", tmp_path / "mine" / "labels.csv", "--checkpoint",
                             small_run, "--json")
    assert code == 0, err
    card = json.loads(out)
    expected = np.mean([p.digit == d for p, d in zip(predictor.predict_batch(
        [png_of(mnist, i) for i in range(12)], [0] * 12), labels[:12], strict=True)])
    assert card["n"] == 12 and card["failed"] == 0 and card["digit_accuracy"] == expected


def test_a_full_folder_is_a_409_and_keeps_nothing_more(predictor, mnist, tmp_path):
    with client(predictor, tmp_path / "mine", max_drawings=2) as c:
        codes = [c.post("/api/collect", files={"image": ("d.png", png_of(mnist, i))}, data={"digit": "1"}).status_code
                 for i in range(3)]
        full = c.post("/api/collect", files={"image": ("d.png", png_of(mnist, 3))}, data={"digit": "1"})
    assert codes == [200, 200, 409] and "full (2 drawings)" in full.json()["error"]
    assert len(list((tmp_path / "mine").glob("*.png"))) == 2
    assert len((tmp_path / "mine" / "labels.csv").read_text().splitlines()) == 3


def test_a_restarted_server_goes_on_with_the_rows_already_there(predictor, mnist, tmp_path):
    for _ in range(2):
        with client(predictor, tmp_path / "mine") as c:
            c.post("/api/collect", files={"image": ("d.png", png_of(mnist, 0))}, data={"digit": "7"})
    rows = (tmp_path / "mine" / "labels.csv").read_text().splitlines()
    assert len(rows) == 3 and len({r.split(",")[0] for r in rows[1:]}) == 2


@pytest.mark.parametrize(("files", "data", "status", "fragment"), [
    ({"image": ("d.png", b"not an image")}, {"digit": "3"}, 400, "image"),
    ({"image": ("d.png", encode(np.full((40, 40), 255, np.uint8)))}, {"digit": "3"}, 400, "no ink"),
    (None, {"digit": "3"}, 400, "image"),
    ("digit", {"digit": "12"}, 422, "digit must be an integer 0-9"),
    ("digit", {}, 422, "missing field 'digit'"),
])
def test_bad_collect_requests_are_refused_and_keep_nothing(predictor, mnist, tmp_path, files, data, status, fragment):
    if files == "digit":
        files = {"image": ("d.png", png_of(mnist, 0))}
    with client(predictor, tmp_path / "mine") as c:
        response = c.post("/api/collect", files=files, data=data) if files else c.post("/api/collect", data=data)
    assert response.status_code == status and fragment in response.json()["error"], response.text
    assert list((tmp_path / "mine").iterdir()) == []


def test_without_collect_there_is_no_collect_route(predictor):
    with TestClient(create_app(predictor)) as c:
        assert c.get("/api/info").json()["collect"] is False
        assert c.post("/api/collect", data={"digit": "1"}).status_code == 404


def test_collect_into_a_file_is_one_clear_line(capsys, tmp_path, small_run):
    (tmp_path / "taken").write_text("x")
    code, _, err = run_cli(capsys, "serve", "--checkpoint", small_run, "--port", "0", "--collect", tmp_path / "taken")
    assert code == 1
    assert_one_line_error(err, "is a file, not a folder")
