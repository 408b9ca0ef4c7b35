"""The web demo and JSON API that ``digitsum serve`` runs: ``create_app(predictor)`` builds the FastAPI app.

* ``app``: the routes and their JSON;
* ``limits``: request-body limits (413) and timeouts;
* ``batcher``: micro-batching, so that requests waiting while the model runs share its next call;
* ``static/index.html``: the drawing page.
"""

from .app import create_app

__all__ = ["create_app"]
