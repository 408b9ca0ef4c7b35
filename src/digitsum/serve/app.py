"""The web demo and JSON API: ``create_app(predictor)`` builds the FastAPI app ``digitsum serve`` runs.

Routes:

* ``GET /``: the drawing page (``static/index.html``, self-contained, works offline).
* ``POST /api/predict``: multipart form, file field ``image`` and field ``number`` (0-9) ->
  ``{"digit", "sum", "digit_probabilities", "sum_probabilities", "image", "is_digit",
  "is_digit_score"}``, where ``image`` is the 28x28 picture the model saw (28 rows of 28 ints
  0-255) and ``is_digit`` whether it looks like a digit at all (a drawing that does not is
  still answered, 200, with the best guess).
* ``GET /api/info``: the model's config and test metrics, and whether drawings are collected.
  ``GET /healthz``: ``{"status": "ok"}``.
* ``HEAD`` on every ``GET`` route: its status and headers without the body (``HeadLikeGet``).
* ``POST /api/collect`` (only with a ``Collector``: ``digitsum serve --collect DIR``): multipart
  ``image`` (the PNG the page sent) and ``digit`` (0-9, what it is) -> ``{"saved", "count"}``;
  409 once the folder is full (collect.py).

Bad input is a 4xx JSON ``{"error": "..."}``, never a 500: 400 for anything that is not a usable
image, 408 for a body that takes over ``body_seconds`` to arrive, 413 for a body over
``max_body_bytes`` (limits.py), 422 for a missing or bad number. Every response is documented
in /openapi.json (schemas.py). Decoding and inference run off the event loop, so it keeps answering
while the model works: a drawing is decoded on the inference thread, just before the model call it
joins; a larger image (a photo) in a worker thread (``BATCHER_PIXELS``).
"""

from contextlib import asynccontextmanager
from importlib import resources

from ..answers import answer_json
from ..errors import ImageError, InputError
from ..predict import Predictor, check_number
from ..preprocess import load_digit
from ..preprocess.decode import declared_pixels
from .batcher import MAX_BATCH, MicroBatcher
from .collect import CollectionFull, Collector
from .limits import BODY_SECONDS, RequestLimits, error_response

MAX_BODY_BYTES = 5_000_000  # default limit on a request body: far above any drawing or photo of a digit
# An image of at most this many pixels (any drawing: the page's, or a client's 280x280 canvas) is decoded on the
# inference thread, beside the model call it joins (batcher.py); a larger one (a photo) in a worker thread, so
# that decoding it never holds up other requests' model calls.
BATCHER_PIXELS = 320 * 320


def form_openapi(field: str, description: str) -> dict:
    """A route's multipart form (``image`` and the integer ``field``) for the OpenAPI page (/docs); the
    endpoints read the form themselves to word their own errors."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image", field], "properties": {
            "image": {"type": "string", "format": "binary", "description": "a picture of one digit (PNG, JPEG, ...)"},
            field: {"type": "integer", "minimum": 0, "maximum": 9, "description": description}}}}}}}


PREDICT_OPENAPI = form_openapi("number", "the number to add")
COLLECT_OPENAPI = form_openapi("digit", "the digit the drawing is")


def json_encoder():
    """The function that encodes a prediction's JSON body as bytes: orjson's when it is installed (the serve
    extra's; it writes the 784 pixels in a tenth of the time, benchmarks/serve_profile.md), else the stdlib's.
    Both write the same values (a float as its shortest round-trip repr)."""
    try:
        import orjson
    except ImportError:
        import json

        return lambda p: json.dumps(answer_json(p), separators=(",", ":"), allow_nan=False).encode()
    return lambda p: orjson.dumps(answer_json(p, rows=False), option=orjson.OPT_SERIALIZE_NUMPY)


def check_digit(value) -> int:
    """A label 0-9 from a form field, or an InputError naming the field ``digit``."""
    try:
        return check_number(value)
    except InputError:
        raise InputError(f"digit must be an integer 0-9 (what the drawing is), got {value!r}") from None


async def _read_form(request, field: str = "number", check=check_number) -> tuple[bytes, int]:
    """(image bytes, the integer ``field``) from a multipart request, or an HTTPException (400 or 422) saying
    what is wrong; ``check`` turns the field's text into its integer."""
    from fastapi import HTTPException
    from starlette.datastructures import UploadFile

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(400, f"send multipart/form-data with a file field 'image' and a field '{field}'")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except HTTPException as error:  # the multipart parser's own 400
        raise HTTPException(400, f"malformed multipart body ({error.detail}): send multipart/form-data with a "
                            f"file field 'image' and a field '{field}'") from None
    try:
        number, image = form.get(field), form.get("image")
        if number is None:
            raise HTTPException(422, f"missing field '{field}': give an integer 0-9")
        if isinstance(number, UploadFile):
            raise HTTPException(422, f"field '{field}' must be a plain form field holding an integer 0-9")
        try:
            number = check(number)
        except InputError as error:
            raise HTTPException(422, str(error)) from None
        if image is None:
            raise HTTPException(400, "missing file field 'image': attach the picture of a digit as 'image'")
        if not isinstance(image, UploadFile):
            raise HTTPException(400, "field 'image' must be a file upload (multipart file field), not text")
        return await image.read(), number
    finally:
        await form.close()  # removes spooled upload files


class HeadLikeGet:
    """ASGI middleware: ``HEAD`` on a route that takes ``GET`` answers as ``GET`` would, status and headers,
    without the body (RFC 9110 9.3.2; a load balancer's health check may send it). ``paths``: those routes."""

    def __init__(self, app, paths: set[str]):
        self.app, self.paths = app, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)

        async def without_body(message):
            await send({**message, "body": b""} if message["type"] == "http.response.body" else message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def with_head(allow: str) -> str:
    """A 405's ``Allow`` list with ``HEAD`` beside ``GET`` (``HeadLikeGet`` answers it)."""
    methods = [m.strip() for m in allow.split(",")]
    return ", ".join(methods + ["HEAD"] if "GET" in methods and "HEAD" not in methods else methods)


def create_app(predictor: Predictor, max_body_bytes: int = MAX_BODY_BYTES, max_batch: int = MAX_BATCH,
               body_seconds: float = BODY_SECONDS, collector: Collector | None = None):
    """The FastAPI app serving ``predictor``: the drawing page and the JSON API.

    Requests that wait while the model runs share its next call, up to ``max_batch`` images
    (1: one call per request). A request body must arrive within ``body_seconds``. With a
    ``collector``, ``POST /api/collect`` keeps labelled drawings.
    """
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .schemas import CollectOut, HealthOut, InfoOut, PredictionOut, error_responses

    batcher = MicroBatcher(predictor, max_batch)
    encode = json_encoder()

    @asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    page = (resources.files("digitsum.serve") / "static" / "index.html").read_text(encoding="utf-8")
    app = FastAPI(title="digitsum", summary="An MNIST digit and a number 0-9 in; the digit and their sum out.",
                  lifespan=lifespan)
    app.add_middleware(RequestLimits, max_bytes=max_body_bytes, body_seconds=body_seconds)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):  # keeps the exception's headers: a 405 lists the allowed methods (Allow)
        message, headers = str(exc.detail), exc.headers
        if exc.status_code == 405 and headers and "Allow" in headers:
            headers = {**headers, "Allow": with_head(headers["Allow"])}
            message = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}"
        return error_response(exc.status_code, message, headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/healthz", response_model=None, responses={200: {"model": HealthOut}})
    async def healthz():
        """``{"status": "ok"}``: the model is loaded and the server answers."""
        return {"status": "ok"}

    @app.get("/api/info", response_model=None, responses={200: {"model": InfoOut}})
    async def info():
        """The served model's config and its test-set metrics; whether ``POST /api/collect`` keeps drawings."""
        return {"config": predictor.config, "metrics": predictor.metrics, "collect": collector is not None}

    @app.post("/api/predict", openapi_extra=PREDICT_OPENAPI, response_model=None,
              responses={200: {"model": PredictionOut}, **error_responses(400, 408, 413, 422)})
    async def predict(request: Request):
        """Multipart ``image`` (file) and ``number`` (0-9) -> digit, sum, their probabilities, the 28x28 image."""
        data, number = await _read_form(request)
        try:
            pixels = declared_pixels(data)
            if pixels is None or pixels > BATCHER_PIXELS:  # Predictor.predict's preprocessing, in a worker thread
                prediction = await batcher.predict_async(await run_in_threadpool(load_digit, data), number)
            else:  # ... or on the inference thread
                prediction = await batcher.predict_async(data, number)
        except ImageError as error:
            raise HTTPException(400, str(error)) from None
        return Response(encode(prediction), media_type="application/json")

    if collector is not None:
        @app.post("/api/collect", openapi_extra=COLLECT_OPENAPI, response_model=None,
                  responses={200: {"model": CollectOut}, **error_responses(400, 408, 409, 413, 422, label="digit")})
        async def collect(request: Request):
            """Multipart ``image`` (a drawing) and ``digit`` (what it is, 0-9): kept in the collection folder."""
            data, digit = await _read_form(request, "digit", check_digit)
            try:
                await run_in_threadpool(load_digit, data)  # only drawings that predict can read are kept
                name = await run_in_threadpool(collector.save, data, digit)
            except ImageError as error:
                raise HTTPException(400, str(error)) from None
            except CollectionFull as error:
                raise HTTPException(409, str(error)) from None
            return {"saved": name, "count": len(collector)}

    app.add_middleware(HeadLikeGet, paths={route.path for route in app.routes
                                           if "GET" in (methods := getattr(route, "methods", None) or ())
                                           and "HEAD" not in methods})
    return app
