"""A load generator that counts successes and failures per image over time.

It runs on the world's loop: `concurrency` workers each send GET requests in a loop, every
request on a new connection (so each is routed afresh by the Service proxy, as connections from
many clients would be), optionally paced to a total `rate` per second, bounded by `max_seconds`
and `max_requests` so it always stops by itself. Each result records when it was sent, how long it
took, whether it succeeded (HTTP 2xx), which pod and image answered (from the JSON body), and the
error otherwise. `timeline()` buckets results for plots of requests/s by image and failures over
time; `summary()` gives the totals a test asserts on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional

import aiohttp


@dataclass(frozen=True)
class Result:
    t: float  # seconds since the generator started, when the request was sent
    latency: float
    ok: bool
    status: int  # HTTP status, or 0 when no answer came
    image: str  # "" when no pod answered
    pod: str
    error: str  # "" on success


class LoadGenerator:
    def __init__(self, world, url: str, *, path: str = "/", concurrency: int = 4, rate: Optional[float] = None,
                 timeout: float = 2.0, max_seconds: float = 120.0, max_requests: int = 200_000,
                 headers: Optional[Dict[str, str]] = None) -> None:
        self.world = world
        self.url = url.rstrip("/") + path
        self.concurrency = concurrency
        self.rate = rate
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.headers = headers or {}
        self.results: List[Result] = []
        self.started = 0.0
        self._stop: Optional[asyncio.Event] = None
        self._future = None

    # -- control from the test's thread --

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "LoadGenerator":
        ready = self.world.run(self._prepare())
        assert ready
        self._future = asyncio.run_coroutine_threadsafe(self._run(), self.world.loop)
        return self

    def stop(self) -> List[Result]:
        if self._future is None:
            return self.results
        if self.world.loop is not None and self._stop is not None:
            self.world.loop.call_soon_threadsafe(self._stop.set)
        self._future.result(timeout=self.timeout + 10)
        self._future = None
        return self.results

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.results) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"load generator sent only {len(self.results)} of {n} requests in {timeout}s")
            time.sleep(0.01)

    # -- the workers --

    async def _prepare(self) -> bool:
        self._stop = asyncio.Event()
        self.started = time.monotonic()
        return True

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector, headers=self.headers) as session:
            workers = [asyncio.create_task(self._worker(session, i)) for i in range(self.concurrency)]
            try:
                async with asyncio.timeout(self.max_seconds):
                    await self._stop.wait()
            except TimeoutError:
                pass
            self._stop.set()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self, session: aiohttp.ClientSession, index: int) -> None:
        interval = self.concurrency / self.rate if self.rate else 0.0
        next_at = time.monotonic() + (interval * index / self.concurrency if interval else 0)
        while not self._stop.is_set() and len(self.results) < self.max_requests:
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await self._stop.wait()
                        return
                    except TimeoutError:
                        pass
                next_at += interval
            await self._one(session)
            if not interval:
                await asyncio.sleep(0)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        sent = time.monotonic()
        status, image, pod, error = 0, "", "", ""
        try:
            async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                status = resp.status
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {}
                if isinstance(body, dict):
                    image, pod = body.get("image", ""), body.get("pod", "")
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except asyncio.TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as e:
            error = type(e).__name__
        self.results.append(Result(sent - self.started, time.monotonic() - sent, not error, status, image, pod, error))

    # -- reading the results (from any thread, after or during the run) --

    def summary(self) -> dict:
        results = list(self.results)
        return {
            "total": len(results),
            "ok": sum(1 for r in results if r.ok),
            "failed": sum(1 for r in results if not r.ok),
            "by_image": dict(Counter(r.image for r in results if r.ok)),
            "errors": dict(Counter(r.error for r in results if not r.ok)),
        }

    def failures(self) -> List[Result]:
        return [r for r in self.results if not r.ok]

    def timeline(self, bucket: float = 0.5) -> List[dict]:
        """[{"t": start of bucket, "by_image": {image: successes}, "failed": n}, ...], gap-free."""
        results = list(self.results)
        if not results:
            return []
        count = int(max(r.t for r in results) // bucket) + 1
        rows = [{"t": round(i * bucket, 6), "by_image": {}, "failed": 0} for i in range(count)]
        for r in results:
            row = rows[int(r.t // bucket)]
            if r.ok:
                row["by_image"][r.image] = row["by_image"].get(r.image, 0) + 1
            else:
                row["failed"] += 1
        return rows
