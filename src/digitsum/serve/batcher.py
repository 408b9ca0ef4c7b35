"""Micro-batching for the server: requests that arrive while the model runs share its next call.

One inference thread owns the model. Callers (any thread, or an event loop through
``predict_async``) queue an image and a number and wait for their Prediction; the thread
takes everything queued (up to ``max_batch``) and runs ``Predictor.predict_arrays`` once on it.
Nothing waits for a batch to fill: an idle server answers a lone request at once, a busy one
batches the requests that queued during the previous call. The model thus never runs on the
event loop, and never in several threads at once.

An image is a uint8 (28, 28) array, used as it is, or an image file's bytes, which the inference
thread decodes and preprocesses (``load_digit``) just before the call it joins. For a drawing that
is the cheapest place: decoding it in another thread costs a thread hop and, worse, a fight for
the GIL with the model's thread, which made a page drawing cost 1.8 times the CPU
(benchmarks/serve_profile.md, "Decoding on the inference thread"). An image that cannot be read
fails its own Future (ImageError) alone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future

import numpy as np

from ..predict import Prediction, Predictor
from ..preprocess import load_digit

MAX_BATCH = 64  # images per model call; more waiting requests go to the next call


class MicroBatcher:
    """Queues (image, number) pairs and answers each with its Prediction from a shared model call."""

    def __init__(self, predictor: Predictor, max_batch: int = MAX_BATCH):
        self.predictor, self.max_batch = predictor, max_batch
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def submit(self, image: np.ndarray | bytes, number: int) -> Future:
        """Queue a uint8 (28, 28) image, or an image file's bytes, and a number 0-9; the Future resolves to its
        Prediction, or fails with the ImageError of bytes that are no usable image."""
        future: Future = Future()
        self._ensure_thread()
        self.queue.put((image, number, future))
        return future

    async def predict_async(self, image: np.ndarray | bytes, number: int) -> Prediction:
        """``submit`` for an event loop: waits without blocking it."""
        return await asyncio.wrap_future(self.submit(image, number))

    def close(self) -> None:
        """Stop the inference thread once the requests queued before this call are answered."""
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
            thread.join()

    def _ensure_thread(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._serve, name="digitsum-inference", daemon=True)
                self.thread.start()

    def _take(self) -> tuple[list, bool]:
        """(the waiting requests, up to max_batch, blocking for the first; whether close() was asked)."""
        first = self.queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _serve(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            live = [item for item in map(self._ready, batch) if item is not None]
            if not live:
                continue
            images = np.stack([image for image, _, _ in live])  # (B, 28, 28) uint8
            try:
                predictions = self.predictor.predict_arrays(images, [number for _, number, _ in live])
            except Exception as error:  # a bug, not bad input (inputs are checked before they queue)
                for _, _, future in live:
                    future.set_exception(error)
                continue
            for (_, _, future), prediction in zip(live, predictions, strict=True):
                future.set_result(prediction)

    @staticmethod
    def _ready(item: tuple) -> tuple | None:
        """A queued (image, number, future) with its image as the model's 28x28; None for a request that was
        cancelled, or whose bytes failed to decode (its future then holds the error)."""
        image, number, future = item
        if not future.set_running_or_notify_cancel():
            return None
        if isinstance(image, np.ndarray):
            return item
        try:
            return load_digit(image), number, future
        except Exception as error:  # noqa: BLE001 - an ImageError for the client; anything else fails this request only
            future.set_exception(error)
            return None
