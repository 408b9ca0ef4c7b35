"""End to end: ``digitsum serve`` in its own process, driven by a real browser drawing digits with the mouse.

Playwright (Python) drives Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it when
missing). The server is started with ``--port 0`` and reports the port the OS gave it, so the test
never races another process for a port.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from digitsum.predict import load_model
from helpers import serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Mouse strokes as points on the pad, (x, y) from 0 to 1: thick-pen digits the model reads reliably.
DIGITS = {
    1: [[(0.5, 0.15), (0.5, 0.85)]],
    7: [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
    4: [[(0.35, 0.15), (0.25, 0.55), (0.75, 0.55)], [(0.6, 0.3), (0.6, 0.85)]],
}


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; a missing one fails the test (as missing MNIST does) rather than skipping it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)", pytrace=False)
    return CHROMIUM


@pytest.fixture
def server(small_run, tmp_path):
    """``python -m digitsum serve`` on a free port: yields its base URL once /healthz answers."""
    with serving(small_run, tmp_path / "serve.log") as url:
        yield url


def draw(page, strokes) -> None:
    """Draw strokes on the pad with the mouse: press, move in small steps, release."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=15)
        page.mouse.up()


def read_answer(page, number: int) -> tuple[int, int]:
    """Pick ``number`` and wait for the page to show the answer for it: (digit, sum) as displayed."""
    page.click(f'#numbers button[data-number="{number}"]')
    page.wait_for_function(f"(document.body.dataset.answered || '').includes('+{number}=')", timeout=15_000)
    return int(page.text_content("#digit")), int(page.text_content("#sum"))


def assert_the_page_sends_less_that_reads_the_same(page, server: str, number: int) -> None:
    """The page sends its drawing's ink box at most 64 pixels a side (plus its margin), not its whole pad: the
    server reads the whole pad, posted as a PNG, as the same digit and sum, and sees nearly the same 28x28."""
    import base64

    import httpx
    import numpy as np

    width, height = page.evaluate("(() => { const c = picture(); return [c.width, c.height]; })()")
    assert max(width, height) <= 64 + 2 * 4 and (width, height) != (28, 28)
    shown = page.evaluate("Array.from(document.getElementById('seen').getContext('2d')"
                          ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0)")
    pad = base64.b64decode(page.evaluate("document.getElementById('pad').toDataURL('image/png')").split(",")[1])
    whole = httpx.post(server + "api/predict", files={"image": ("pad.png", pad, "image/png")},
                       data={"number": str(number)}, timeout=30).json()
    assert (whole["digit"], whole["sum"]) == (int(page.text_content("#digit")), int(page.text_content("#sum")))
    assert np.abs(np.array(whole["image"]).ravel() - np.array(shown)).mean() < 8  # grey levels 0-255


def test_drawing_digits_shows_the_digit_and_the_sum(chromium, server, tmp_path):
    outside, console_errors = [], []

    def only_the_server(route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.route("**/*", only_the_server)
            page.goto(server)
            answers = {}
            for digit, number in [(7, 5), (1, 8), (4, 3)]:
                page.click("#clear")
                draw(page, DIGITS[digit])
                answers[digit] = read_answer(page, number)
                assert answers[digit] == (digit, digit + number), f"drew {digit}, picked {number}"
                assert_the_page_sends_less_that_reads_the_same(page, server, number)
            seen_ink = page.evaluate("Array.from(document.getElementById('seen').getContext('2d')"
                                     ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0 && v > 128)"
                                     ".length")
            assert seen_ink > 20  # the 28x28 image the model saw is drawn on the page
            assert page.locator("#digit-bars .bar").count() == 10 and page.locator("#sum-bars .bar").count() == 19
            shot = Path(tmp_path) / "serve.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert outside == [] and console_errors == []  # works offline: nothing fetched from elsewhere, no errors


def test_the_page_says_when_a_drawing_does_not_look_like_a_digit(chromium, server):
    """The server's real answer for a scribble, with its verdict turned to "not a digit" by the browser's
    route (which verdict a given model gives a drawing is the model's business; this is the page's)."""
    import json

    def not_a_digit(route) -> None:
        response = route.fetch()
        body = response.json()
        body.update(is_digit=False, is_digit_score=0.05)
        route.fulfill(response=response, body=json.dumps(body))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/api/predict", not_a_digit)
            page.goto(server)
            draw(page, [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]])  # an X
            read_answer(page, 2)
            status = page.text_content("#status")
            assert "doesn't look like a digit" in status and "best guess" in status
            assert page.evaluate("document.querySelector('.answer').classList.contains('guess')")
            assert page.evaluate("document.body.dataset.isDigit") == "false"
            page.unroute("**/api/predict")
            page.click("#clear")
            draw(page, DIGITS[7])
            read_answer(page, 3)  # a real answer again: the guess is no longer greyed
            assert not page.evaluate("document.querySelector('.answer').classList.contains('guess')")
        finally:
            browser.close()


def test_with_collect_the_page_saves_a_drawing_with_the_label_given_it(chromium, small_run, tmp_path):
    folder = tmp_path / "mine"
    with serving(small_run, tmp_path / "serve.log", "--collect", str(folder)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.length > 0", timeout=15_000)
            assert page.locator("#teach").is_hidden()  # nothing to label before a drawing is read
            draw(page, DIGITS[7])
            read_answer(page, 2)
            page.click('#teach-digits button[data-teach="7"]')
            page.wait_for_function("document.body.dataset.collected === '1'", timeout=15_000)
            assert "Saved as a 7" in page.text_content("#status")
        finally:
            browser.close()
    rows = (folder / "labels.csv").read_text().splitlines()
    assert rows[0] == "image,digit" and len(rows) == 2 and rows[1].endswith(",7")
    saved = folder / rows[1].split(",")[0]
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the page's own PNG, as it sent it
    assert load_model(small_run).predict(saved, 2).digit == 7  # read as the page read it
