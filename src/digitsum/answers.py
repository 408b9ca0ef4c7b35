"""digitsum's answers as JSON: the one function the command line and the web API build them with.

The library returns typed results (``Prediction``, a manifest row's ``Predicted`` or ``Failed``);
only the edges, ``digitsum predict --json`` and ``POST /api/predict``, turn them into JSON objects.
"""

from __future__ import annotations

from .manifest import Failed, Predicted
from .predict import Prediction


def answer_json(answer: Prediction | Predicted | Failed, rows: bool = True) -> dict:
    """The JSON object of one answer (``rows=False``: a Prediction's image stays the uint8 (28, 28) array, for
    an encoder that writes arrays itself, as the same 28 rows).

    * a ``Prediction`` (the web API): digit, sum, both probability vectors, the 28x28 image the
      model saw (28 rows of 28 ints 0-255), is_digit, is_digit_score;
    * a ``Predicted`` row or image (the command line): image, number, digit, sum, the probability of
      each, is_digit, is_digit_score;
    * a ``Failed`` row: image, number (as written), error.
    """
    if isinstance(answer, Failed):
        return {"image": answer.image, "number": answer.number, "error": answer.error}
    if isinstance(answer, Predicted):
        p = answer.prediction
        return {"image": answer.image, "number": answer.number, "digit": p.digit, "sum": p.sum,
                "digit_probability": p.digit_probability, "sum_probability": p.sum_probability,
                "is_digit": p.is_digit, "is_digit_score": p.is_digit_score}
    return {
        "digit": answer.digit,
        "sum": answer.sum,
        "digit_probabilities": list(answer.digit_probabilities),
        "sum_probabilities": list(answer.sum_probabilities),
        "image": answer.image.tolist() if rows else answer.image,  # (28, 28) uint8 -> 28 lists of 28 ints
        "is_digit": answer.is_digit,
        "is_digit_score": answer.is_digit_score,
    }
