"""Request limits: every client gets its 4xx, and no client can hold the server.

``RequestLimits`` is ASGI middleware around the app:

* a body over ``max_bytes`` gets a 413, whether its Content-Length says so or its bytes pass
  the limit as they stream in. Before answering, the rest of the body is read and discarded,
  up to ``DRAIN_BYTES`` (as nginx's lingering close does): a client that writes its whole body
  before it reads (Python's urllib, many simple clients) then reads the 413 instead of a
  connection reset. The connection is closed after the answer.
* a body that has not fully arrived ``body_seconds`` after the request began (a client
  trickling it byte by byte, or one that stopped sending) gets a 408, and the connection is
  closed. The event loop never waits on a client: other requests go on meanwhile.
"""

from __future__ import annotations

import asyncio

DRAIN_BYTES = 64_000_000  # most of a refused body read and discarded before the 413
BODY_SECONDS = 60.0  # longest a request body may take to arrive


class BodyTooLarge(Exception):
    """A request body went over the limit while it streamed in."""


class BodyTimeout(Exception):
    """A request body did not arrive in time."""


def error_response(status: int, message: str, close: bool = False, headers: dict | None = None):
    """A JSON ``{"error": message}`` response with ``headers`` (a 405's ``Allow``, say); ``close`` also asks to
    close the connection after it."""
    from fastapi.responses import JSONResponse

    headers = {**(headers or {}), **({"connection": "close"} if close else {})}
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class RequestLimits:
    """ASGI middleware: 413 for a body over ``max_bytes``, 408 for one slower than ``body_seconds``."""

    def __init__(self, app, max_bytes: int, body_seconds: float = BODY_SECONDS, drain_bytes: int = DRAIN_BYTES):
        self.app, self.max_bytes, self.body_seconds, self.drain_bytes = app, max_bytes, body_seconds, drain_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = Body(receive, self.max_bytes, asyncio.get_running_loop().time() + self.body_seconds)
        length = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self.too_large(body, scope, send)
        started = False

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, watching_send)
        except (BodyTooLarge, BodyTimeout) as error:
            if started:
                raise
            if isinstance(error, BodyTooLarge):
                return await self.too_large(body, scope, send)
            seconds = f"{self.body_seconds:g}"
            await error_response(408, f"the request body did not arrive within {seconds} s: send it at once",
                                 close=True)(scope, body.receive, send)

    async def too_large(self, body: Body, scope, send) -> None:
        """Read and discard what remains of the body (up to drain_bytes, until the deadline), then answer 413."""
        await body.drain(self.drain_bytes)
        limit = f"{self.max_bytes / 1e6:g} MB"
        error = f"request body is over the {limit} limit: send a smaller image (a digit needs only a few kB)"
        await error_response(413, error, close=True)(scope, body.receive, send)


class Body:
    """A request's ``receive``, counting the body's bytes against a limit and its time against a deadline."""

    def __init__(self, receive, max_bytes: int, deadline: float):
        self._receive, self.max_bytes, self.deadline = receive, max_bytes, deadline
        self.received, self.more = 0, True

    async def _next(self) -> dict:
        if not self.more:  # the body is complete: what follows is a disconnect, whenever it comes
            return await self._receive()
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), max(remaining, 0.0))
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
            raise BodyTimeout from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.more = message.get("more_body", False)
        else:
            self.more = False
        return message

    async def receive(self) -> dict:
        message = await self._next()
        if self.received > self.max_bytes:
            raise BodyTooLarge
        return message

    async def drain(self, most: int) -> None:
        """Discard the rest of the body: until it ends, ``most`` bytes in all have come, or the deadline."""
        try:
            while self.more and self.received <= most:
                await self._next()
        except BodyTimeout:
            pass
