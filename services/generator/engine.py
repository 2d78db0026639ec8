"""The generator's engine: one diffusers pipeline, its adapters, and one generation at a time.

The pipeline runs under a model lock: a generation holds it from choosing its
adapter version to the last VAE frame, so an adapter installed meanwhile waits
for it, and every video is made by exactly one version. Encoding the mp4
happens outside the lock, overlapping with the next generation.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lift import __version__
from lift.checkpoints import fingerprint, quiet_hf, resolve_device, resolve_dtype
from lift.errors import Cancelled, DeadlineExceeded, InvalidInput, NotReady, PayloadTooLarge
from lift.generation import (
    BASE_VERSION,
    AdapterFiles,
    GeneratedVideo,
    GenerationMetadata,
    GenerationRequest,
    Progress,
    Stage,
    Timings,
)
from lift.services.generator import metrics
from lift.services.generator.adapters import (
    AdapterRecord,
    AdapterSet,
    check_version,
    parse_adapter,
    read_adapter_uri,
)
from lift.services.generator.settings import GeneratorSettings
from lift.serving import Deadline
from lift.t2v import PipelineSpec, family_for, load_pipeline
from lift.t2v.tiny import TINY_NAME, ensure_tiny_generator, is_tiny
from lift.uris import UriPolicy
from lift.video.encode import encode_video

log = logging.getLogger(__name__)

OnProgress = Callable[[Progress], None]
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class AdapterLoad:
    """The outcome of installing an adapter."""

    version: str
    previous_version: str
    """The default version, which a load leaves as it was."""
    modules: int
    rank: int
    load_ms: float
    loaded_versions: list[str]
    pinned: bool = False
    evicted_versions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AdapterPromotion:
    """The default version changed."""

    version: str
    previous_version: str


@dataclass(frozen=True)
class AdapterPin:
    """A version's pin changed."""

    version: str
    pinned: bool


@dataclass(frozen=True)
class GeneratorInfo:
    """What GetInfo reports."""

    model_name: str
    model_version: str
    spec: PipelineSpec
    demo: bool
    device: str
    dtype: str
    current_adapter_version: str
    adapters: list[AdapterRecord]
    settings: GeneratorSettings
    pinned: frozenset[str] = frozenset()
    """Loaded versions that are never unloaded to make room."""
    suite_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        """The JSON of GET /v1/info; field names as in GetInfo's response message."""
        s, spec, d = self.settings, self.spec, self.spec.defaults
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "pipeline": spec.pipeline,
            "demo": self.demo,
            "device": self.device,
            "dtype": self.dtype,
            "current_adapter_version": self.current_adapter_version,
            "adapters": [
                {
                    "version": a.version,
                    "modules": a.modules,
                    "rank": a.rank,
                    "loaded_at": a.loaded_at,
                    "pinned": a.version in self.pinned,
                }
                for a in self.adapters
            ],
            "defaults": {
                "num_frames": d.num_frames,
                "height": d.height,
                "width": d.width,
                "num_inference_steps": d.num_inference_steps,
                "guidance_scale": d.guidance_scale,
                "fps": s.default_fps or d.fps,
            },
            "limits": {
                "max_num_frames": s.max_num_frames,
                "frames_multiple": spec.frames_multiple,
                "max_side_px": s.max_side_px,
                "size_multiple": spec.size_multiple,
                "max_num_inference_steps": s.max_num_inference_steps,
                "max_guidance_scale": s.max_guidance_scale,
                "max_prompt_chars": s.max_prompt_chars,
                "max_adapter_bytes": s.max_adapter_bytes,
            },
            "suite_version": self.suite_version,
        }


class GeneratorEngine:
    """Loads the pipeline and serves generations and adapter loads (thread-safe)."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings
        self.ready = False
        self.pipe: Any = None
        self.spec: PipelineSpec | None = None
        self.adapters: AdapterSet | None = None
        self.model_name = ""
        self.model_version = ""
        self.demo = False
        self.device = ""
        self.dtype = ""
        self._model_lock = threading.Lock()  # one generation or adapter install at a time
        self._adapter_lock = threading.Lock()  # one adapter validation at a time

    # -- start-up ----------------------------------------------------------------

    def load(self) -> None:
        """Load the pipeline (the embedded demo model when no model is set)."""
        start = time.perf_counter()
        quiet_hf()
        s = self.settings
        model_dir = s.model if s.model is not None else ensure_tiny_generator(s.cache_dir)
        self.demo = is_tiny(model_dir)
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.dtype, device)
        pipe = load_pipeline(model_dir, dtype)
        family = family_for(pipe)
        self.spec = family.spec(pipe)
        if s.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        if s.vae_tiling and hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.adapters = AdapterSet(family.denoiser(pipe), s.adapter_keep)
        self.model_name = TINY_NAME if self.demo else Path(model_dir).resolve().name
        self.model_version = f"{self.model_name}@{fingerprint(model_dir)}"
        self.device, self.dtype = device, str(dtype).removeprefix("torch.")
        elapsed = time.perf_counter() - start
        metrics.MODEL_LOAD_SECONDS.set(elapsed)
        metrics.MODEL_INFO.info(
            {
                "model": self.model_version,
                "pipeline": self.spec.pipeline,
                "demo": str(self.demo).lower(),
                "device": self.device,
                "dtype": self.dtype,
            }
        )
        metrics.ADAPTER_INFO.info({"version": BASE_VERSION})
        d = self.spec.defaults
        log.info(
            "generator: %s (%s, %s) on %s %s in %.1f s; defaults %d frames %dx%d, %d steps",
            self.model_version,
            self.spec.pipeline,
            family.name,
            self.device,
            self.dtype,
            elapsed,
            d.num_frames,
            d.width,
            d.height,
            d.num_inference_steps,
        )
        if self.demo:
            log.warning(
                "serving the embedded DEMO model (%s, random weights: its videos are noise); "
                "point --model / LIFT_GENERATOR_MODEL at a real diffusers checkpoint",
                model_dir,
            )
        self.ready = True

    def close(self) -> None:
        """Release the pipeline."""
        self.ready = False
        self.pipe = None

    # -- requests ----------------------------------------------------------------

    def resolve(self, req: GenerationRequest) -> GenerationRequest:
        """Fill defaults and check bounds; InvalidInput names the field and the fix."""
        if not self.ready or self.spec is None:
            raise NotReady("the generator is still loading its model; retry shortly")
        s, d = self.settings, self.spec.defaults
        if not req.prompt.strip():
            raise InvalidInput("prompt is empty: say what the video should show")
        for name in ("prompt", "negative_prompt"):
            if len(getattr(req, name)) > s.max_prompt_chars:
                raise InvalidInput(f"{name} is longer than {s.max_prompt_chars} characters")
        r = replace(
            req,
            seed=req.seed if req.seed is not None else secrets.randbelow(2**31),
            num_frames=req.num_frames if req.num_frames is not None else d.num_frames,
            height=req.height if req.height is not None else d.height,
            width=req.width if req.width is not None else d.width,
            num_inference_steps=req.num_inference_steps
            if req.num_inference_steps is not None
            else d.num_inference_steps,
            guidance_scale=req.guidance_scale
            if req.guidance_scale is not None
            else d.guidance_scale,
            fps=req.fps if req.fps is not None else (s.default_fps or d.fps),
        )
        assert r.seed is not None and r.num_frames is not None and r.height is not None
        assert r.width is not None and r.num_inference_steps is not None
        assert r.guidance_scale is not None and r.fps is not None
        _within("seed", r.seed, 0, MAX_SEED)
        _within("num_frames", r.num_frames, 1, s.max_num_frames)
        for side in ("height", "width"):
            value = getattr(r, side)
            _within(side, value, 16, s.max_side_px)
            if value % 2:
                raise InvalidInput(f"{side} must be even (H.264 video); got {value}")
        _within("num_inference_steps", r.num_inference_steps, 1, s.max_num_inference_steps)
        if not 0 <= r.guidance_scale <= s.max_guidance_scale:
            raise InvalidInput(
                f"guidance_scale must be between 0 and {s.max_guidance_scale}; "
                f"got {r.guidance_scale}"
            )
        if not 0 < r.fps <= s.max_fps:
            raise InvalidInput(f"fps must be above 0 and at most {s.max_fps}; got {r.fps}")
        if r.adapter_version and r.adapter_version != BASE_VERSION:
            check_version(r.adapter_version)
        return r

    def generate(
        self, req: GenerationRequest, deadline: Deadline, on_progress: OnProgress | None = None
    ) -> GeneratedVideo:
        """Generate the video ``req`` (already :meth:`resolve`-d) asks for."""
        arrived = time.perf_counter()
        r = self.resolve(req)  # cheap; makes the engine safe to call directly
        assert self.spec is not None and self.adapters is not None
        assert r.seed is not None and r.num_frames is not None and r.height is not None
        assert r.width is not None and r.num_inference_steps is not None
        assert r.guidance_scale is not None and r.fps is not None
        emit = on_progress or (lambda p: None)
        native = (
            self.spec.native_num_frames(r.num_frames),
            self.spec.native_side(r.height),
            self.spec.native_side(r.width),
        )
        with self.adapters.hold(r.adapter_version):  # never unloaded while this waits or runs
            return self._generate(r, arrived, native, deadline, emit)

    def _generate(
        self,
        r: GenerationRequest,
        arrived: float,
        native: tuple[int, int, int],
        deadline: Deadline,
        emit: OnProgress,
    ) -> GeneratedVideo:
        import torch

        assert self.spec is not None and self.adapters is not None
        assert r.seed is not None and r.num_frames is not None and r.height is not None
        assert r.width is not None and r.num_inference_steps is not None
        assert r.guidance_scale is not None and r.fps is not None
        steps = r.num_inference_steps
        self._acquire(deadline)
        try:
            version = self.adapters.activate(r.adapter_version)
            started = time.perf_counter()
            marks = {"denoised": started}

            def report(stage: Stage, step: int) -> None:
                emit(Progress(stage, step, steps, time.perf_counter() - started, version))

            def on_step(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                now = time.perf_counter()
                metrics.STEP_SECONDS.observe(now - marks.get("step", started))
                marks["step"] = now
                deadline.check()  # a cancelled or late request stops denoising here
                report(Stage.DENOISING, i + 1)
                if i + 1 == steps:
                    marks["denoised"] = now
                    report(Stage.DECODING, steps)
                return {}

            report(Stage.STARTED, 0)
            out = self.pipe(
                prompt=r.prompt,
                negative_prompt=r.negative_prompt or None,
                num_frames=native[0],
                height=native[1],
                width=native[2],
                num_inference_steps=steps,
                guidance_scale=r.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(r.seed),
                output_type="np",
                callback_on_step_end=on_step,
            )
            decoded = time.perf_counter()
        except (Cancelled, DeadlineExceeded):
            metrics.VIDEOS.labels("cancelled").inc()
            raise
        except Exception:
            metrics.VIDEOS.labels("failed").inc()
            raise
        finally:
            self._model_lock.release()
        frames = _crop(_to_uint8(out.frames[0]), r.num_frames, r.height, r.width)
        report(Stage.ENCODING, steps)
        data = encode_video(frames, r.fps)
        done = time.perf_counter()
        metrics.VIDEOS.labels("ok").inc()
        for stage, seconds in (
            ("queue", started - arrived),
            ("denoise", marks["denoised"] - started),
            ("decode", decoded - marks["denoised"]),
            ("encode", done - decoded),
        ):
            metrics.STAGE_SECONDS.labels(stage).observe(seconds)
        meta = GenerationMetadata(
            prompt=r.prompt,
            negative_prompt=r.negative_prompt,
            seed=r.seed,
            num_frames=r.num_frames,
            height=r.height,
            width=r.width,
            num_inference_steps=steps,
            guidance_scale=r.guidance_scale,
            fps=r.fps,
            adapter_version=version,
            model_version=self.model_version,
            timings=Timings(
                queue_ms=_ms(started - arrived),
                denoise_ms=_ms(marks["denoised"] - started),
                decode_ms=_ms(decoded - marks["denoised"]),
                encode_ms=_ms(done - decoded),
                total_ms=_ms(done - arrived),
            ),
        )
        return GeneratedVideo(data, "video/mp4", meta)

    @contextmanager
    def hold(self, version: str) -> Iterator[None]:
        """Keep ``version`` loaded while a request that named it waits in the queue and runs."""
        if self.adapters is None:
            yield
            return
        with self.adapters.hold(version):
            yield

    def _acquire(self, deadline: Deadline) -> None:
        # Wait for the model in short slices so a caller who leaves stops waiting.
        while not self._model_lock.acquire(timeout=0.05):
            deadline.check()
        try:
            deadline.check()
        except BaseException:
            self._model_lock.release()
            raise

    # -- adapters ----------------------------------------------------------------

    def load_adapter(
        self,
        version: str,
        source: AdapterFiles | str,
        deadline: Deadline | None = None,
        pin: bool = False,
    ) -> AdapterLoad:
        """Validate and install an adapter (files, or a file:// URI) as ``version``.

        The default version stays as it was: only :meth:`promote_adapter` changes what
        callers naming no version get. A caller whose deadline passes while the
        generation in flight finishes gets DEADLINE_EXCEEDED and nothing is installed;
        when every loaded version is pinned the load is refused (RESOURCE_EXHAUSTED).
        """
        deadline = deadline or Deadline()
        if not self.ready or self.adapters is None:
            raise NotReady("the generator is still loading its model; retry shortly")
        start = time.perf_counter()
        try:
            with self._adapter_lock:
                self.adapters.check_new(version)
                limit = self.settings.max_adapter_bytes
                if isinstance(source, str):
                    policy = UriPolicy(file_root=self.settings.adapter_root)
                    files = read_adapter_uri(source, policy, limit)
                else:
                    files = source
                if len(files.weights) > limit:
                    raise PayloadTooLarge(
                        f"the adapter is {len(files.weights)} bytes; the limit is {limit}"
                    )
                parsed = parse_adapter(files, self.adapters.denoiser)
                # Waits for the generation in flight: it finishes on its own version.
                self._acquire(deadline)
                try:
                    installed = self.adapters.install(version, parsed, pin)
                    default = self.adapters.default
                    versions = self.adapters.versions()
                finally:
                    self._model_lock.release()
        except Exception:
            metrics.ADAPTER_LOADS.labels("refused").inc()
            raise
        metrics.ADAPTER_LOADS.labels("ok").inc()
        load_ms = _ms(time.perf_counter() - start)
        record = installed.record
        log.info(
            "adapter %s installed (%d modules, rank %d, %.0f ms%s); default stays %s%s",
            version,
            record.modules,
            record.rank,
            load_ms,
            ", pinned" if installed.pinned else "",
            default,
            f"; unloaded {', '.join(installed.evicted)}" if installed.evicted else "",
        )
        return AdapterLoad(
            version,
            default,
            record.modules,
            record.rank,
            load_ms,
            versions,
            installed.pinned,
            installed.evicted,
        )

    def promote_adapter(self, version: str) -> AdapterPromotion:
        """Make ``version`` (a loaded label, or "base"/"" for none) the default.

        Generations already running finish on the version they started with; the
        next request naming no version gets ``version``.
        """
        if not self.ready or self.adapters is None:
            raise NotReady("the generator is still loading its model; retry shortly")
        if version and version != BASE_VERSION:
            check_version(version)
        previous = self.adapters.promote(version)
        now = self.adapters.default
        metrics.ADAPTER_INFO.info({"version": now})
        log.warning("adapter %s promoted: the default version was %s", now, previous)
        return AdapterPromotion(now, previous)

    def pin_adapter(self, version: str, pinned: bool) -> AdapterPin:
        """Pin (never unloaded to make room) or unpin a loaded version."""
        if not self.ready or self.adapters is None:
            raise NotReady("the generator is still loading its model; retry shortly")
        check_version(version)
        now = self.adapters.pin(version, pinned)
        log.info("adapter %s %s", version, "pinned" if pinned else "unpinned")
        return AdapterPin(version, now)

    def info(self) -> GeneratorInfo:
        """Model, defaults, limits and adapters."""
        if not self.ready or self.spec is None or self.adapters is None:
            raise NotReady("the generator is still loading its model; retry shortly")
        return GeneratorInfo(
            model_name=self.model_name,
            model_version=self.model_version,
            spec=self.spec,
            demo=self.demo,
            device=self.device,
            dtype=self.dtype,
            current_adapter_version=self.adapters.default,
            adapters=list(self.adapters.records),
            settings=self.settings,
            pinned=frozenset(v for v in self.adapters.versions() if self.adapters.is_pinned(v)),
        )


def _within(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}; got {value}")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _to_uint8(frames: Any) -> np.ndarray:
    """Pipeline output (F, H, W, 3) floats in [0, 1] (or PIL images) as uint8 RGB."""
    arr = np.stack([np.asarray(f) for f in frames]) if isinstance(frames, list) else frames
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _crop(frames: np.ndarray, n: int, height: int, width: int) -> np.ndarray:
    """The first ``n`` frames, centre-cropped to ``height`` x ``width``."""
    _, h, w, _ = frames.shape
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(frames[:n, top : top + height, left : left + width])
