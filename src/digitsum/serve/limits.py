"""Request limits for the server: a body over the limit gets its 413, however the client sends it."""

from __future__ import annotations


class BodyTooLarge(Exception):
    """A request body went over the limit while it streamed in."""


class BodyLimit:
    """ASGI middleware: 413 for a body whose Content-Length, or whose streamed bytes, pass ``max_bytes``."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self.reject(scope, receive, send)
        received, started = 0, False

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self.reject(scope, receive, send)

    async def reject(self, scope, receive, send):
        limit = f"{self.max_bytes / 1e6:g} MB"
        error = f"request body is over the {limit} limit: send a smaller image (a digit needs only a few kB)"
        await error_response(413, error)(scope, receive, send)


def error_response(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


