"""The JSON the API answers with, as pydantic models: they document every response on /docs and
in /openapi.json (which the fuzzing test holds the server to). Responses are built as plain JSON,
not validated through these models, so they cost nothing per request."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

Probability = Annotated[float, Field(ge=0, le=1)]
Pixel = Annotated[int, Field(ge=0, le=255)]


class PredictionOut(BaseModel):
    """What the model read in the image, with the number added."""

    digit: int = Field(ge=0, le=9, description="the digit the model reads in the image")
    sum: int = Field(ge=0, le=18, description="digit + number, as the sum head reads it")
    digit_probabilities: list[Probability] = Field(min_length=10, max_length=10, description="for digits 0-9")
    sum_probabilities: list[Probability] = Field(min_length=19, max_length=19, description="for sums 0-18")
    image: list[Annotated[list[Pixel], Field(min_length=28, max_length=28)]] = Field(
        min_length=28, max_length=28, description="the 28x28 image the model saw: 28 rows of 28 ints, light on black")
    is_digit: bool = Field(description="whether the image looks like a digit at all; if not, digit and sum are "
                           "a best guess")
    is_digit_score: Probability | None = Field(description="the verdict's score in [0, 1]: is_digit is "
                                               "is_digit_score >= 0.5; a logistic of how far the image is inside "
                                               "the digits' range, in validation standard deviations "
                                               "(null for a model without a verdict)")


class ErrorOut(BaseModel):
    """Why a request was refused."""

    error: str = Field(description="what is wrong and what to do")


class HealthOut(BaseModel):
    status: Literal["ok"]


class InfoOut(BaseModel):
    """The served model's config and its test-set metrics."""

    config: dict = Field(description="the checkpoint's config.json")
    metrics: dict = Field(description="its metrics.json: test-set figures")
    collect: bool = Field(description="whether POST /api/collect keeps labelled drawings (serve --collect)")


class CollectOut(BaseModel):
    """A drawing kept in the collection folder."""

    saved: str = Field(description="the file name the server gave the drawing, in the collection folder")
    count: int = Field(ge=1, description="drawings in the folder's labels.csv, this one included")


def error_responses(*codes: int, label: str = "number") -> dict:
    """OpenAPI ``responses`` for these error status codes, each an ErrorOut; ``label`` is the form's integer field."""
    meaning = {400: "not a usable image, or not a multipart form", 408: "the body did not arrive in time",
               409: "the collection folder is full", 413: "the body is over the size limit",
               422: f"the {label} is missing or not an integer 0-9"}
    return {code: {"model": ErrorOut, "description": meaning[code]} for code in codes}
