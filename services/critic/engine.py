"""The critic engine: validate input, decode, run the backend, build the critique.

Pure Python, no transport types: the gRPC servicer and the FastAPI app both
call these methods (through :class:`lift.serving.WorkLimiter`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift import __version__
from lift.critique import (
    Comparison,
    Critique,
    Dimension,
    DimensionPreference,
    ModelInfo,
    Preference,
    VideoInfo,
)
from lift.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidInput,
    LiftError,
    NotReady,
    PayloadTooLarge,
)
from lift.reward import RewardMap, video_reward
from lift.services.critic import metrics, pairwise
from lift.services.critic.backends import CriticBackend, create_backend
from lift.services.critic.backends.base import (
    DEFAULT_PROTOCOL,
    DEFAULT_SCORE_SEMANTICS,
    Judgement,
    PairJudgement,
    motion_unassessed,
)
from lift.services.critic.batching import MicroBatcher
from lift.services.critic.settings import CriticSettings
from lift.serving import Deadline
from lift.uris import FetchGate, is_http_uri, is_uri, read_uri
from lift.video import decode_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSource:
    """A video as the caller gave it: exactly one of bytes or a URI."""

    data: bytes | None = None
    uri: str | None = None
    error: LiftError | None = None
    """Why fetching ``uri`` failed (set by :meth:`CriticEngine.fetch_all`); raised on read."""

    @classmethod
    def from_arg(cls, arg: str) -> VideoSource:
        """A URI as given, or the bytes of a local file (raises OSError if unreadable)."""
        return cls(uri=arg) if is_uri(arg) else cls(data=Path(arg).read_bytes())


@dataclass(frozen=True)
class ScoreOutcome:
    """One item of a Score batch: a critique without reasons, or why it failed."""

    critique: Critique | None = None
    error: LiftError | None = None


@dataclass(frozen=True)
class _Prepared:
    item: Any
    prompt: str
    video: VideoInfo
    digest: bytes = b""
    """SHA-256 of the encoded video: the canonical order of a compared pair."""


@dataclass(frozen=True)
class CriticInfo:
    """What GetInfo reports."""

    model: ModelInfo
    assessed: tuple[Dimension, ...]
    reward_map: RewardMap
    settings: CriticSettings
    suite_version: str = __version__
    protocol: str = DEFAULT_PROTOCOL
    """How the model's outputs become a critique (e.g. "labels")."""
    score_semantics: str = DEFAULT_SCORE_SEMANTICS
    """What scores and the reward mean."""
    sampling_frames: int = 0
    """Most frames the backend looks at per video."""
    sampling_mode: str = "time"
    """How those frames are spread: "time" or "index"."""


class CriticEngine:
    """Judges videos with one backend; thread-safe for concurrent calls."""

    def __init__(self, settings: CriticSettings, backend: CriticBackend | None = None) -> None:
        self.settings = settings
        self._backend = backend
        self._uri_policy = settings.uri_policy
        self._fetches = FetchGate(settings.http_uri_concurrency, settings.http_uri_queue)
        self._batcher: MicroBatcher | None = None
        self._pair_batcher: MicroBatcher | None = None

    def load(self) -> None:
        """Build the backend (load the model); call once at start-up, off the request path."""
        if self._backend is None:
            start = time.perf_counter()
            self._backend = create_backend(self.settings)
            metrics.MODEL_LOAD_SECONDS.set(time.perf_counter() - start)
        if self.backend.batched and self._batcher is None:
            self._batcher = MicroBatcher(
                self.backend.judge_batch,
                self.settings.batch_max_size,
                self.settings.batch_max_wait_ms / 1000,
            )
        compare_batch = getattr(self.backend, "compare_batch", None)
        if compare_batch is not None and self.backend.batched and self._pair_batcher is None:
            self._pair_batcher = MicroBatcher(
                lambda pairs, _with_reasons, check: compare_batch(pairs, check),
                self.settings.batch_max_size,
                self.settings.batch_max_wait_ms / 1000,
            )
        metrics.BACKEND_INFO.info(
            {
                "backend": self.backend.model.backend,
                "name": self.backend.model.name,
                "version": self.backend.model.version,
            }
        )

    @property
    def ready(self) -> bool:
        """Whether the backend is loaded."""
        return self._backend is not None

    @property
    def backend(self) -> CriticBackend:
        """The loaded backend."""
        if self._backend is None:
            raise NotReady("the critic is still loading its model; retry shortly")
        return self._backend

    def info(self) -> CriticInfo:
        """Backend, model, reward map and limits."""
        b = self.backend
        return CriticInfo(
            b.model,
            b.assessed,
            self.settings.reward_map,
            self.settings,
            protocol=getattr(b, "protocol", DEFAULT_PROTOCOL),
            score_semantics=getattr(b, "score_semantics", DEFAULT_SCORE_SEMANTICS),
            sampling_frames=self._max_samples(b),
            sampling_mode=getattr(b, "frame_sampling", "time"),
        )

    def _max_samples(self, backend: CriticBackend) -> int:
        return min(backend.max_frames, self.settings.max_frames_analysed)

    # -- input checks ---------------------------------------------------------
    def check_prompt(self, prompt: str) -> str:
        """Return the stripped prompt, or raise if it is empty or too long."""
        text = (prompt or "").strip()
        if not text:
            raise InvalidInput("the prompt is empty: send the text the video was generated from")
        if len(text) > self.settings.max_prompt_chars:
            raise InvalidInput(
                f"the prompt has {len(text)} characters; the limit is "
                f"{self.settings.max_prompt_chars}: shorten it"
            )
        return text

    def read_source(self, source: VideoSource) -> bytes:
        """The encoded video bytes of ``source`` (reading its URI under the policy)."""
        if source.error is not None:
            raise source.error
        if source.data and source.uri:
            raise InvalidInput("send the video as bytes or as a URI, not both")
        if source.uri:
            return read_uri(source.uri, self._uri_policy, self.settings.max_video_bytes)
        if source.data is None:
            raise InvalidInput("no video: send the video bytes or a video URI")
        return source.data

    # -- remote videos ----------------------------------------------------------
    async def fetch(self, source: VideoSource, deadline: Deadline) -> VideoSource:
        """``source`` with an http(s) URI replaced by the bytes it names (others as given).

        Called by the fronts on the event loop *before* the request takes a worker: a
        slow URI then holds a fetch slot (bounded, with its own total deadline), never a
        judging worker or a place in the worker queue.
        """
        if source.data or not source.uri or not is_http_uri(source.uri):
            return source
        data = await self._fetches.fetch(
            source.uri, self._uri_policy, self.settings.max_video_bytes, deadline.remaining()
        )
        return VideoSource(data=data)

    async def fetch_all(self, sources: list[VideoSource], deadline: Deadline) -> list[VideoSource]:
        """:meth:`fetch` for a batch, concurrently; an item that fails carries its error.

        The bytes one batch may fetch in all are capped at ``max_message_bytes`` (what one
        request could carry inline), so a batch of URIs cannot hold more memory than that.
        """
        if len(sources) > self.settings.max_batch_items:
            return sources  # refused by score() before anything is fetched
        budget = self.settings.max_message_bytes

        async def one(source: VideoSource) -> VideoSource:
            nonlocal budget
            try:
                fetched = await self.fetch(source, deadline)
            except LiftError as exc:
                return VideoSource(uri=source.uri, error=exc)
            if fetched is not source and fetched.data is not None:
                budget -= len(fetched.data)
                if budget < 0:
                    return VideoSource(
                        uri=source.uri,
                        error=PayloadTooLarge(
                            "the videos this batch names add up to more than "
                            f"{self.settings.max_message_bytes} bytes; split the batch"
                        ),
                    )
            return fetched

        return list(await asyncio.gather(*(one(s) for s in sources)))

    # -- work -----------------------------------------------------------------
    def _prepare(self, source: VideoSource, prompt: str, deadline: Deadline) -> _Prepared:
        """Check, read, decode and backend-prepare one video (in the request's thread)."""
        backend = self.backend
        text = self.check_prompt(prompt)
        data = self.read_source(source)
        deadline.check()
        t0 = time.perf_counter()
        video = decode_video(
            data,
            self.settings.video_limits,
            max_samples=self._max_samples(backend),
            pixel_format=backend.pixel_format,
            sampling=getattr(backend, "frame_sampling", "time"),
            max_kept_bytes=self.settings.max_kept_mb * 1024 * 1024,
        )
        metrics.DECODE_SECONDS.observe(time.perf_counter() - t0)
        metrics.FRAMES_ANALYSED.inc(video.num_sampled)
        deadline.check()
        info = VideoInfo(
            frames=video.total_frames,
            fps=video.fps,
            duration_s=video.duration_s,
            width=video.width,
            height=video.height,
            frames_analysed=video.num_sampled,
            container=video.container,
            codec=video.codec,
            fps_analysed=_sampled_fps(video.timestamps),
        )
        item = backend.prepare(video, text, deadline.check)
        return _Prepared(item, text, info, hashlib.sha256(data).digest())

    def _judge(
        self, prepared: list[_Prepared], with_reasons: bool, deadline: Deadline
    ) -> list[Critique]:
        backend = self.backend
        items = [p.item for p in prepared]
        if self._batcher is not None:
            judgements = self._batcher.submit(items, with_reasons, deadline)
        else:
            judgements = backend.judge_batch(items, with_reasons, deadline.check)
        out = []
        for p, j in zip(prepared, judgements, strict=True):
            if p.video.frames < 2 or p.video.frames_analysed < 2:
                # Whatever the backend said: one frame has no motion to score.
                dims = motion_unassessed(j.dimensions)
                if not with_reasons:
                    dims = tuple(d.without_reasons() for d in dims)
                j = Judgement(dims, None)
            c = Critique(
                dimensions=j.dimensions,
                reward=video_reward(j.dimensions, self.settings.reward_map),
                model=backend.model,
                video=p.video,
                prompt=p.prompt,
                dynamic_degree=j.dynamic_degree,
            )
            metrics.observe_critique(c)
            out.append(c)
        return out

    def critique(
        self, source: VideoSource, prompt: str, deadline: Deadline, with_reasons: bool = True
    ) -> Critique:
        """Judge one video against ``prompt``."""
        return self._judge([self._prepare(source, prompt, deadline)], with_reasons, deadline)[0]

    def score(self, items: list[tuple[VideoSource, str]], deadline: Deadline) -> list[ScoreOutcome]:
        """Score a batch (labels and probabilities, no reasons); items fail on their own."""
        if not items:
            raise InvalidInput("the batch is empty: send at least one item")
        if len(items) > self.settings.max_batch_items:
            raise InvalidInput(
                f"the batch has {len(items)} items; the limit is {self.settings.max_batch_items}: "
                "split it"
            )
        metrics.BATCH_SIZE.observe(len(items))
        outcomes: list[ScoreOutcome | None] = [None] * len(items)
        ready: list[tuple[int, _Prepared]] = []
        for i, (source, prompt) in enumerate(items):
            try:
                ready.append((i, self._prepare(source, prompt, deadline)))
            except LiftError as exc:
                if isinstance(exc, DeadlineExceeded | Cancelled):
                    raise
                outcomes[i] = ScoreOutcome(error=exc)
        if ready:
            critiques = self._judge([p for _, p in ready], False, deadline)
            for (i, _), c in zip(ready, critiques, strict=True):
                outcomes[i] = ScoreOutcome(c)
        return [o for o in outcomes if o is not None]

    def compare(
        self, prompt: str, source_a: VideoSource, source_b: VideoSource, deadline: Deadline
    ) -> Comparison:
        """Which of two videos of ``prompt`` is better, per dimension and overall.

        Both videos are decoded like Score's and judged in one batch. A backend with
        ``compare_batch`` judges the pair itself; otherwise the preference is derived
        from the two judgements (:mod:`lift.services.critic.pairwise`).
        """
        self.check_prompt(prompt)
        prepared = []
        for name, source in (("a", source_a), ("b", source_b)):
            try:
                prepared.append(self._prepare(source, prompt, deadline))
            except LiftError as exc:
                if isinstance(exc, DeadlineExceeded | Cancelled | NotReady):
                    raise
                raise type(exc)(f"video {name}: {exc.message}") from None
        pa, pb = prepared
        # The pair goes to the model in a canonical order (by content), so that a
        # swapped request sees the very same batch: a batched model's numbers may
        # differ in the last bits with an item's place in the batch.
        swap = pb.digest < pa.digest
        first, second = (pb, pa) if swap else (pa, pb)
        backend = self.backend
        if getattr(backend, "compare_batch", None) is not None:
            pair = (first.item, second.item)
            if self._pair_batcher is not None:
                judged: PairJudgement = self._pair_batcher.submit([pair], False, deadline)[0]
            else:
                judged = backend.compare_batch([pair], deadline.check)[0]  # type: ignore[attr-defined]
            dims, overall, method = judged.dimensions, judged.overall, judged.method
            if swap:
                dims = tuple(DimensionPreference(d.name, d.preference.swapped()) for d in dims)
                overall = overall.swapped()
            videos = (pa.video, pb.video)
            if min(n for v in videos for n in (v.frames, v.frames_analysed)) < 2:
                # As for a critique: one frame has no motion to compare.
                dims = tuple(
                    DimensionPreference(d.name, Preference())
                    if d.name == Dimension.MOTION_SMOOTHNESS
                    else d
                    for d in dims
                )
        else:
            if pa.digest == pb.digest:
                # The same file twice: one judgement serves both (and they are equal).
                ca = cb = self._judge([pa], False, deadline)[0]
            else:
                ca, cb = self._judge([first, second], False, deadline)
                if swap:
                    ca, cb = cb, ca
            dims, overall, method = pairwise.derive(
                ca.dimensions, cb.dimensions, self.settings.reward_map
            )
        return Comparison(
            dimensions=dims,
            overall=overall,
            method=method,
            model=backend.model,
            video_a=pa.video,
            video_b=pb.video,
            prompt=pa.prompt,
        )

    def close(self) -> None:
        """Stop the batching threads."""
        if self._batcher is not None:
            self._batcher.close()
        if self._pair_batcher is not None:
            self._pair_batcher.close()


def _sampled_fps(timestamps: Any) -> float:
    """Frames per second of the sampled frames: one over their mean gap (0 for one frame)."""
    if len(timestamps) < 2:
        return 0.0
    span = float(timestamps[-1] - timestamps[0])
    return (len(timestamps) - 1) / span if span > 0 else 0.0
