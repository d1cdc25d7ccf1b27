"""Dynamic micro-batching: requests that arrive together share one `classify` call.

    batcher = MicroBatcher(reader.classify, max_batch=64, max_wait=0.002)
    probabilities = await batcher.classify(images)   # (k, 28, 28) -> (k, C)

Contract: each caller gets exactly the rows its own images would get from a
call of its own (the model sees each image independently). A caller waits at
most `max_wait` seconds for company, plus the model call already running: one
call runs at a time, and what arrives meanwhile goes into the next, up to
`max_batch` images (a single caller with more is never split). Model calls run
on one thread of their own, so the event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class MicroBatcher:
    def __init__(
        self,
        classify: Callable[[np.ndarray], np.ndarray],
        max_batch: int,
        max_wait: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        self._classify = classify
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._on_batch = on_batch  # told each batch's size (the metrics' histogram)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="classify")
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._pending_images = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running = False

    async def classify(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for (k, 28, 28) images, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((images, future))
        self._pending_images += len(images)
        if self._pending_images >= self.max_batch:
            self._flush()
        elif self._timer is None and not self._running:
            self._timer = loop.call_later(self.max_wait, self._flush)
        return await future

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running or not self._pending:
            return  # the running call flushes what waits when it ends
        # Everyone waiting, up to max_batch images (at least one caller); the rest go next.
        taken = count = 0
        for images, _ in self._pending:
            if taken and count + len(images) > self.max_batch:
                break
            taken += 1
            count += len(images)
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._pending_images -= count
        self._running = True
        images = np.concatenate([images for images, _ in batch]) if len(batch) > 1 else batch[0][0]
        self._on_batch(len(images))
        call = asyncio.get_running_loop().run_in_executor(self._executor, self._classify, images)
        call.add_done_callback(lambda done: self._deliver(batch, done))

    def _deliver(
        self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]], done: asyncio.Future[np.ndarray]
    ) -> None:
        self._running = False
        error = done.exception()
        start = 0
        for images, future in batch:
            if not future.done():  # its request may have been cancelled (client gone)
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result()[start : start + len(images)])
            start += len(images)
        if self._pending:
            self._flush()
