"""The HTTP service (FastAPI): ``POST /recommend``, ``POST /rerank``, ``GET /health``.

The model is loaded once per process. Concurrent ``/recommend`` requests are batched: a request
joins the batch of the requests that arrived while the previous batch was being scored
(at most ``max_batch`` users), so under load one reranker call serves many clients; alone, a
request is scored at once. A user the run does not know is served from the ``histories`` the
body gives (``{"items": [...], "liked": [...]}`` per user; ``{"items": []}``: the most rated
items). Bad input is a 422 naming the field (FastAPI's validation) or a 400 with the library's
message (unknown user or item, too many candidates).
"""

import asyncio
import os
import resource
import time

from recbole_dnr.errors import UserInputError, missing_extra
from recbole_dnr.version import VERSION


def _api():
    try:
        import fastapi
        import pydantic
    except ImportError as err:
        raise missing_extra("the HTTP service needs FastAPI and uvicorn", "fastapi uvicorn", "serve") from err
    return fastapi, pydantic


class _Batcher:
    """Scores queued ``/recommend`` calls together, one reranker call per batch (the model is not
    thread-safe to call concurrently; one worker thread runs every batch)."""

    def __init__(self, recommender, max_batch):
        self.recommender, self.max_batch = recommender, max_batch
        self.queue = None
        self.task = None

    async def start(self):
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self):
        if self.task is not None:
            self.task.cancel()

    async def submit(self, user_ids, k, histories=None):
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((user_ids, k, histories, future))
        return await future

    async def _run(self):
        while True:
            jobs = [await self.queue.get()]
            n = len(jobs[0][0])
            while not self.queue.empty() and n < self.max_batch:
                jobs.append(self.queue.get_nowait())
                n += len(jobs[-1][0])
            await asyncio.to_thread(self._score, jobs)

    def _score(self, jobs):
        users = [u for user_ids, _, _, _ in jobs for u in user_ids]
        k_max = max(k for _, k, _, _ in jobs)
        histories = None
        if any(h is not None for _, _, h, _ in jobs):
            histories = [e for user_ids, _, h, _ in jobs for e in (h if h is not None else [None] * len(user_ids))]
        try:
            lists = self.recommender.recommend(users, k=k_max, with_scores=True, histories=histories)
        except UserInputError:  # one bad request must not fail the others: score each alone
            for user_ids, k, h, future in jobs:
                try:
                    result = self.recommender.recommend(user_ids, k=k, with_scores=True, histories=h)
                    self._resolve(future, result)
                except UserInputError as err:
                    self._resolve(future, err)
            return
        at = 0
        for user_ids, k, _, future in jobs:
            self._resolve(future, [row[:k] for row in lists[at:at + len(user_ids)]])
            at += len(user_ids)

    @staticmethod
    def _resolve(future, value):
        loop = future.get_loop()
        if isinstance(value, Exception):
            loop.call_soon_threadsafe(future.set_exception, value)
        else:
            loop.call_soon_threadsafe(future.set_result, value)


def create_app(recommender, max_batch=512):
    """The FastAPI app serving ``recommender`` (a loaded :class:`~recbole_dnr.serve.Recommender`)."""
    fastapi, pydantic = _api()
    from contextlib import asynccontextmanager

    batcher = _Batcher(recommender, max_batch)
    started = time.time()
    served = {"recommend": 0, "rerank": 0}

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = fastapi.FastAPI(title="recbole_dnr", version=VERSION, lifespan=lifespan)
    n = recommender.n

    class History(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        items: list[str]
        liked: list[int] | None = None

    def as_history(h):
        return None if h is None else (h.items, h.liked)

    class RecommendBody(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        user_ids: list[str] = pydantic.Field(min_length=1, max_length=4096)
        k: int = pydantic.Field(6, ge=1, le=n)
        histories: list[History | None] | None = None

    class RerankBody(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        user_id: str
        item_ids: list[str] = pydantic.Field(min_length=1, max_length=n)
        scores: list[float] | None = None
        history: History | None = None

    def bad(err):
        return fastapi.HTTPException(status_code=400, detail=str(err))

    @app.get("/health")
    def health():
        return {"status": "ok", "model": recommender.config["model"], "dataset": recommender.config["dataset"],
                "candidate_num": n, "uptime_s": round(time.time() - started, 1), "served": dict(served),
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "pid": os.getpid()}

    @app.post("/recommend")
    async def recommend(body: RecommendBody):
        try:
            histories = None if body.histories is None else [as_history(h) for h in body.histories]
            lists = await batcher.submit(body.user_ids, body.k, histories)
        except UserInputError as err:
            raise bad(err) from None
        served["recommend"] += 1
        return {"items": [[i for i, _ in row] for row in lists], "scores": [[s for _, s in row] for row in lists]}

    @app.post("/rerank")
    def rerank(body: RerankBody):
        if body.scores is not None and len(body.scores) != len(body.item_ids):
            raise fastapi.HTTPException(status_code=422, detail=f"scores: {len(body.scores)} values for "
                                                                f"{len(body.item_ids)} item_ids")
        try:
            row = recommender.rerank(body.user_id, body.item_ids, body.scores, with_scores=True,
                                     history=as_history(body.history))
        except UserInputError as err:
            raise bad(err) from None
        served["rerank"] += 1
        return {"items": [i for i, _ in row], "scores": [s for _, s in row]}

    return app
