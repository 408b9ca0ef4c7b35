"""``digitsum serve``: the drawing page and the JSON API over HTTP (FastAPI + uvicorn).

With ``--workers N`` (N > 1) uvicorn's supervisor runs N worker processes on the one listening socket,
each with its own model: Python runs one thread at a time per process, so one process's decoding and
inference use about one core, and N processes up to N (benchmarks/serve_profile.md, "Decoding on the
inference thread": on 2 cores shared with the client, 2 workers pay for 28x28 digits, not for the
page's drawings).
"""

from __future__ import annotations

import socket
import sys
from functools import partial

from .common import add_checkpoint, int_in, positive_number, resolve_checkpoint


def add(sub) -> None:
    from ..serve.batcher import MAX_BATCH
    from ..serve.collect import MAX_DRAWINGS
    from ..serve.limits import BODY_SECONDS

    p = sub.add_parser("serve", help="serve the drawing page and the JSON prediction API",
                       description="Serve a web page to draw a digit on and a JSON API "
                       "(POST /api/predict with a multipart file 'image' and a field 'number'). "
                       "The model is loaded once, before the server starts listening.")
    add_checkpoint(p, onnx=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; "
                   "0.0.0.0 to accept other machines)")
    p.add_argument("--port", type=int_in(0, 65535), default=8000,
                   help="port to listen on, 0 for any free one (default: 8000)")
    p.add_argument("--max-body-mb", type=positive_number("megabytes"), default=5.0,
                   help="largest request body accepted, in MB; bigger ones get 413 (default: 5)")
    p.add_argument("--body-timeout", type=positive_number("seconds"), default=BODY_SECONDS,
                   help="seconds a request body may take to arrive; slower ones get 408 and are closed "
                   f"(default: {BODY_SECONDS:g})")
    p.add_argument("--max-batch", type=int_in(1), default=MAX_BATCH, help="most requests answered by one model call; "
                   f"requests that arrive while the model runs wait for the next call (default: {MAX_BATCH}; "
                   "1: one call per request)")
    p.add_argument("--collect", metavar="DIR", default=None,
                   help="keep drawings the page labels ('this is a ...') in DIR, with DIR/labels.csv, to fine-tune "
                   "on with 'digitsum train --extra-digits DIR/labels.csv' (default: off)")
    p.add_argument("--collect-max", type=int_in(1), default=MAX_DRAWINGS,
                   help=f"most drawings DIR may hold; further ones get 409 (default: {MAX_DRAWINGS})")
    p.add_argument("--threads", type=int_in(0), default=1,
                   help="torch threads for the model, 0 for torch's default (default: 1; the event loop parses "
                   "requests on another core meanwhile)")
    p.add_argument("--workers", type=int_in(1), default=1,
                   help="server processes, each with its own model and --threads threads (2: about 600 MB in all, "
                   "against 240 MB for 1); more than 1 answers more requests at once on a machine with as many "
                   "cores to spare (default: 1)")
    p.set_defaults(run=run)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), or ServeError saying what to change."""
    from ..errors import ServeError

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        raise ServeError(f"cannot resolve --host {host!r}: give an address such as 127.0.0.1") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({error.strerror}): "
                         "choose another --port or --host") from None
    sock.listen(2048)  # connections made before uvicorn has started wait in the backlog rather than fail
    return sock


def worker_app(settings: dict):
    """The app of one worker process (``--workers`` > 1): its own model, loaded from ``settings``."""
    import torch

    from ..predict import load_model
    from ..serve import create_app

    if settings["threads"] > 0:
        torch.set_num_threads(settings["threads"])
    return create_app(load_model(settings["checkpoint"], settings["runtime"]), **settings["limits"])


def run(args) -> int:
    from ..errors import ConfigError, require

    for module in ("uvicorn", "fastapi", "python_multipart"):  # before the model loads: one line if one is missing
        require(module, "serve", "digitsum serve")
    if args.workers > 1 and args.collect:
        raise ConfigError("--collect keeps drawings from one process: use it with --workers 1")
    import uvicorn

    from ..predict import load_model
    from ..runtime import threads
    from ..serve import create_app
    from ..serve.collect import open_collector

    limits = {"max_body_bytes": int(args.max_body_mb * 1_000_000), "max_batch": args.max_batch,
              "body_seconds": args.body_timeout}
    with threads(args.threads):
        checkpoint = resolve_checkpoint("serve", args.checkpoint, args.runtime)
        predictor = load_model(checkpoint, args.runtime)  # with workers too: a bad checkpoint is refused here
        collector = open_collector(args.collect, args.collect_max) if args.collect else None
        if args.workers > 1:  # each worker loads its own
            settings = {"checkpoint": checkpoint, "runtime": args.runtime, "threads": args.threads, "limits": limits}
            app, predictor = partial(worker_app, settings), None
        else:
            app = create_app(predictor, collector=collector, **limits)
        sock = listen(args.host, args.port)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"digitsum serve: http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
        if collector is not None:
            print(f"digitsum serve: keeping labelled drawings in {collector.labels} ({len(collector)} so far, "
                  f"at most {collector.max_drawings})", file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, factory=args.workers > 1,
                                workers=args.workers)
        try:
            if args.workers > 1:
                from uvicorn.supervisors import Multiprocess

                Multiprocess(config, sockets=[sock]).run()  # Ctrl-C or SIGTERM stops the workers, then returns
            else:
                uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on: the normal way to stop
            pass
        finally:
            sock.close()
    print("digitsum serve: stopped", file=sys.stderr)
    return 0
