"""A memory budget for decoded images: pixels in flight between decoding and the model's answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


class BudgetSpentError(RuntimeError):
    """No room in the budget within the wait; the service answers 503 with Retry-After."""


class PixelBudget:
    """At most `capacity` decoded pixels held at once; a request waits up to `wait` seconds for room.

    Waiters are served first-fit, not in order: a small photo goes ahead of a 50 MP image that is
    still waiting for room, so large uploads cannot hold up ordinary ones. An image larger than the
    whole budget takes all of it (it is within the pixel limit, so it must be able to run).

    >>> import asyncio
    >>> budget = PixelBudget(capacity=100, wait=0.01)
    >>> async def demo():
    ...     async with budget.hold(80):
    ...         try:
    ...             async with budget.hold(30):
    ...                 pass
    ...         except BudgetSpentError as err:
    ...             return str(err).split(":")[0]
    >>> asyncio.run(demo())
    'busy'
    """

    def __init__(self, capacity: int, wait: float) -> None:
        if capacity <= 0 or wait < 0:
            raise ValueError(f"budget capacity must be positive and wait not negative: {capacity}, {wait}")
        self.capacity = capacity
        self.wait = wait
        self.used = 0
        self._waiters: list[tuple[int, anyio.Event]] = []

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold `pixels` of the budget for the body of the `async with`.

        Raises:
            BudgetSpentError: no room came free within `wait` seconds.
        """
        taken = await self._acquire(min(max(pixels, 0), self.capacity))
        try:
            yield
        finally:
            self.used -= taken
            self._wake()

    async def _acquire(self, pixels: int) -> int:
        if self.used + pixels <= self.capacity:
            self.used += pixels
            return pixels
        entry = (pixels, anyio.Event())
        self._waiters.append(entry)
        try:
            with anyio.move_on_after(self.wait):
                await entry[1].wait()
        except BaseException:  # cancelled (the client went away): give back what may have been granted
            if entry[1].is_set():
                self.used -= pixels
                self._wake()
            else:
                self._waiters.remove(entry)
            raise
        if entry[1].is_set():
            return pixels
        self._waiters.remove(entry)
        raise BudgetSpentError(
            f"busy: decoded images waiting for the model hold {self.used:,} of the {self.capacity:,}-pixel "
            f"budget and this image needs {pixels:,}; retry shortly"
        )

    def _wake(self) -> None:
        for entry in list(self._waiters):
            pixels, event = entry
            if self.used + pixels <= self.capacity:
                self.used += pixels
                self._waiters.remove(entry)
                event.set()
