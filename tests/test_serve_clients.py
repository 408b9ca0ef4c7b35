"""``digitsum serve`` against real clients in their own sockets: every client gets its 4xx (urllib's
413 included), a body that does not arrive gets a 408 and its connection closed, and the server
answers others meanwhile."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from helpers import serving

BOUNDARY = "digitsum-test"


def multipart(image: bytes, number: str = "3") -> tuple[bytes, str]:
    """(body, content type) of a form with file field ``image`` and field ``number``."""
    body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="number"\r\n\r\n{number}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def server(small_run, tmp_path_factory):
    """A server with the default 5 MB limit and a 3-second body timeout."""
    with serving(small_run, tmp_path_factory.mktemp("serve") / "serve.log", "--body-timeout", "3") as url:
        yield url


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def test_a_health_check_by_head_gets_the_200_without_a_body_and_the_connection_stays_usable(server):
    with socket.create_connection(address(server), timeout=60) as client:
        request = b"HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\nGET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
        client.sendall(request)  # two requests on one connection: the first answer must carry no body
        answer = b""
        while answer.count(b"HTTP/1.1 200") < 2 or not answer.endswith(b'{"status":"ok"}'):
            chunk = client.recv(65536)
            assert chunk, f"the server closed the connection after {answer!r}"
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 15" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # the GET's answer follows at once: HEAD's had no body


@pytest.mark.parametrize("megabytes", [6, 30])
def test_urllib_writing_a_large_body_before_reading_gets_the_413(server, megabytes):
    body, content_type = multipart(b"x" * (megabytes * 1_000_000))
    request = urllib.request.Request(server + "api/predict", data=body, headers={"Content-Type": content_type})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=120)
    assert caught.value.code == 413
    assert "over the 5 MB limit" in json.loads(caught.value.read())["error"]


def test_a_body_that_stops_arriving_gets_a_408_and_the_connection_is_closed(server):
    body, content_type = multipart(b"\x89PNG" + b"x" * 1000)
    with socket.create_connection(address(server), timeout=60) as client:
        client.sendall((f"POST /api/predict HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:100])  # then nothing more
        answer = b""
        while chunk := client.recv(65536):  # until the server closes the connection
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert "did not arrive within 3 s" in json.loads(payload)["error"]


def test_clients_trickling_their_bodies_do_not_stop_other_requests(server, mnist):
    from helpers import encode

    trickling = [socket.create_connection(address(server), timeout=60) for _ in range(20)]
    try:
        for client in trickling:
            client.sendall(b"POST /api/predict HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; "
                           b"boundary=x\r\nContent-Length: 100000\r\n\r\n--x")
        body, content_type = multipart(encode(mnist["test"].images[0].numpy()), "5")
        request = urllib.request.Request(server + "api/predict", data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert (answer["digit"], answer["sum"]) == (7, 12)
        with urllib.request.urlopen(server + "healthz", timeout=60) as response:
            assert json.loads(response.read()) == {"status": "ok"}
    finally:
        for client in trickling:
            client.close()
