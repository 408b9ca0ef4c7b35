"""The web demo and JSON API: ``create_app(predictor)`` builds the FastAPI app ``digitsum serve`` runs.

Routes:

* ``GET /``: the drawing page (``static/index.html``, self-contained, works offline).
* ``POST /api/predict``: multipart form, file field ``image`` and field ``number`` (0-9) ->
  ``{"digit", "sum", "digit_probabilities", "sum_probabilities", "image", "is_digit",
  "is_digit_score"}``, where ``image`` is the 28x28 picture the model saw (28 rows of 28 ints
  0-255) and ``is_digit`` whether it looks like a digit at all (a drawing that does not is
  still answered, 200, with the best guess).
* ``GET /api/info``: the model's config and test metrics. ``GET /healthz``: ``{"status": "ok"}``.

Bad input is a 4xx JSON ``{"error": "..."}``, never a 500: 400 for anything that is not a usable
image, 408 for a body that takes over ``body_seconds`` to arrive, 413 for a body over
``max_body_bytes`` (limits.py), 422 for a missing or bad number. Every response is documented
in /openapi.json (schemas.py). Decoding and inference run in worker threads, so the event loop
keeps answering while the model works.
"""

from contextlib import asynccontextmanager
from importlib import resources

from ..errors import ImageError, InputError
from ..predict import Prediction, Predictor, check_number
from ..preprocess import load_digit
from .batcher import MAX_BATCH, MicroBatcher
from .limits import BODY_SECONDS, RequestLimits, error_response

MAX_BODY_BYTES = 5_000_000  # default limit on a request body: far above any drawing or photo of a digit


# /api/predict's form for the OpenAPI page (/docs); the endpoint reads the form itself to word its own errors.
PREDICT_OPENAPI = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image", "number"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "a picture of one digit (PNG, JPEG, ...)"},
        "number": {"type": "integer", "minimum": 0, "maximum": 9, "description": "the number to add"}}}}}}}


def prediction_json(p: Prediction, rows: bool = True) -> dict:
    """The JSON body of a prediction, with the 28x28 image the model saw as 28 rows of ints (``rows=False``:
    as the uint8 (28, 28) array, which orjson writes as the same rows)."""
    return {
        "digit": p.digit,
        "sum": p.sum,
        "digit_probabilities": list(p.digit_probabilities),
        "sum_probabilities": list(p.sum_probabilities),
        "image": p.image.tolist() if rows else p.image,  # (28, 28) uint8 -> 28 lists of 28 ints
        "is_digit": p.is_digit,
        "is_digit_score": p.is_digit_score,
    }


def json_encoder():
    """The function that encodes a prediction's JSON body as bytes: orjson's when it is installed (the serve
    extra's; it writes the 784 pixels in a tenth of the time, benchmarks/serve_profile.md), else the stdlib's.
    Both write the same values (a float as its shortest round-trip repr)."""
    try:
        import orjson
    except ImportError:
        import json

        return lambda p: json.dumps(prediction_json(p), separators=(",", ":"), allow_nan=False).encode()
    return lambda p: orjson.dumps(prediction_json(p, rows=False), option=orjson.OPT_SERIALIZE_NUMPY)


async def _read_form(request) -> tuple[bytes, int]:
    """(image bytes, number) from a multipart request, or an HTTPException (400 or 422) saying what is wrong."""
    from fastapi import HTTPException
    from starlette.datastructures import UploadFile

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(400, "send multipart/form-data with a file field 'image' and a field 'number'")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except HTTPException as error:  # the multipart parser's own 400
        raise HTTPException(400, f"malformed multipart body ({error.detail}): send multipart/form-data with a "
                            "file field 'image' and a field 'number'") from None
    try:
        number, image = form.get("number"), form.get("image")
        if number is None:
            raise HTTPException(422, "missing field 'number': give an integer 0-9")
        if isinstance(number, UploadFile):
            raise HTTPException(422, "field 'number' must be a plain form field holding an integer 0-9")
        try:
            number = check_number(number)
        except InputError as error:
            raise HTTPException(422, str(error)) from None
        if image is None:
            raise HTTPException(400, "missing file field 'image': attach the picture of a digit as 'image'")
        if not isinstance(image, UploadFile):
            raise HTTPException(400, "field 'image' must be a file upload (multipart file field), not text")
        return await image.read(), number
    finally:
        await form.close()  # removes spooled upload files


def create_app(predictor: Predictor, max_body_bytes: int = MAX_BODY_BYTES, max_batch: int = MAX_BATCH,
               body_seconds: float = BODY_SECONDS):
    """The FastAPI app serving ``predictor``: the drawing page and the JSON API.

    Requests that wait while the model runs share its next call, up to ``max_batch`` images
    (1: one call per request). A request body must arrive within ``body_seconds``.
    """
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .schemas import HealthOut, InfoOut, PredictionOut, error_responses

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
    async def http_error(request, exc):
        return error_response(exc.status_code, str(exc.detail))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/healthz", response_model=None, responses={200: {"model": HealthOut}})
    async def healthz():
        """``{"status": "ok"}``: the model is loaded and the server answers."""
        return {"status": "ok"}

    @app.get("/api/info", response_model=None, responses={200: {"model": InfoOut}})
    async def info():
        """The served model's config and its test-set metrics."""
        return {"config": predictor.config, "metrics": predictor.metrics}

    @app.post("/api/predict", openapi_extra=PREDICT_OPENAPI, response_model=None,
              responses={200: {"model": PredictionOut}, **error_responses(400, 408, 413, 422)})
    async def predict(request: Request):
        """Multipart ``image`` (file) and ``number`` (0-9) -> digit, sum, their probabilities, the 28x28 image."""
        data, number = await _read_form(request)
        try:
            image28 = await run_in_threadpool(load_digit, data)  # Predictor.predict's preprocessing
        except ImageError as error:
            raise HTTPException(400, str(error)) from None
        return Response(encode(await batcher.predict_async(image28, number)), media_type="application/json")

    return app
