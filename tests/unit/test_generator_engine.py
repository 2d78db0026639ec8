"""The generator's engine on the tiny CogVideoX pipeline: shapes, determinism, progress,
cancellation and every bad request field."""

from __future__ import annotations

import io
import threading

import av
import numpy as np
import pytest

from lift.errors import Cancelled, DeadlineExceeded, InvalidInput, NotFound
from lift.generation import GenerationRequest, Progress, Stage
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.settings import GeneratorSettings
from lift.serving import Deadline
from lift.t2v import PipelineSpec
from lift.t2v.base import Defaults

SMALL = {"num_frames": 9, "height": 32, "width": 48, "num_inference_steps": 3}


def frames_of(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def engine(tiny_generator_dir) -> GeneratorEngine:
    e = GeneratorEngine(GeneratorSettings(model=tiny_generator_dir))
    e.load()
    return e


def gen(engine: GeneratorEngine, events: list[Progress] | None = None, **fields) -> bytes:
    req = GenerationRequest(**{"prompt": "a dog runs on the beach", "seed": 1, **SMALL, **fields})
    return engine.generate(
        engine.resolve(req), Deadline(), events.append if events is not None else None
    ).data


def test_tiny_model_is_written_byte_identically(tiny_generator_dir, tmp_path) -> None:
    from lift.t2v.tiny import write_tiny_generator

    again = write_tiny_generator(tmp_path / "again")
    files = sorted(
        p.relative_to(tiny_generator_dir) for p in tiny_generator_dir.rglob("*") if p.is_file()
    )
    assert files and files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (tiny_generator_dir / f).read_bytes() == (again / f).read_bytes(), f


def test_demo_model_is_labelled(engine: GeneratorEngine) -> None:
    info = engine.info().to_json()
    assert info["demo"] is True and info["pipeline"] == "CogVideoXPipeline"
    assert info["defaults"] == {
        "num_frames": 49,
        "height": 64,
        "width": 96,
        "num_inference_steps": 50,
        "guidance_scale": 6.0,
        "fps": 8.0,
    }
    assert info["limits"]["frames_multiple"] == 4 and info["limits"]["size_multiple"] == 16


@pytest.mark.parametrize(
    ("n", "native"), [(1, 1), (2, 5), (5, 5), (9, 9), (10, 13), (49, 49), (50, 53)]
)
def test_native_frames_are_4k_plus_1(n: int, native: int) -> None:
    spec = PipelineSpec("X", Defaults(49, 480, 720, 50, 6, 8), frames_multiple=4)
    assert spec.native_num_frames(n) == native


def test_native_frames_respect_temporal_patches() -> None:
    # CogVideoX 1.5: latent frames must be a multiple of patch_size_t = 2.
    spec = PipelineSpec("X", Defaults(81, 768, 1360, 50, 6, 16), 4, 2)
    for n in range(1, 90):
        native = spec.native_num_frames(n)
        assert native >= n and (native - 1) % 4 == 0 and ((native - 1) // 4 + 1) % 2 == 0
        assert spec.native_num_frames(native) == native


@pytest.mark.parametrize(
    ("frames", "height", "width"), [(9, 32, 48), (10, 50, 70), (1, 16, 16), (17, 64, 96)]
)
def test_video_has_the_requested_shape(engine, frames: int, height: int, width: int) -> None:
    video = frames_of(
        gen(engine, num_frames=frames, height=height, width=width, num_inference_steps=2)
    )
    assert video.shape == (frames, height, width, 3)


def test_same_request_same_frames_other_seed_other_frames(engine) -> None:
    # Several repeats: x264 once made the same frames decode differently run to run.
    a, *again = [frames_of(gen(engine, seed=11)) for _ in range(5)]
    assert all(np.array_equal(a, b) for b in again)
    c = frames_of(gen(engine, seed=12))
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1
    d = frames_of(gen(engine, seed=11, prompt="a cat sleeps on a sofa"))
    assert not np.array_equal(a, d)


def test_progress_comes_in_order(engine) -> None:
    events: list[Progress] = []
    gen(engine, events, num_inference_steps=4)
    assert [(e.stage, e.step) for e in events] == [
        (Stage.STARTED, 0),
        *[(Stage.DENOISING, i) for i in range(1, 5)],
        (Stage.DECODING, 4),
        (Stage.ENCODING, 4),
    ]
    assert all(e.total_steps == 4 and e.adapter_version == "base" for e in events)
    assert [e.elapsed_s for e in events] == sorted(e.elapsed_s for e in events)


def test_metadata_reports_what_was_made(engine) -> None:
    req = GenerationRequest("a bird", seed=None, fps=12.5, **SMALL)
    v = engine.generate(engine.resolve(req), Deadline())
    m = v.metadata
    assert v.mime_type == "video/mp4" and m.seed is not None and m.fps == 12.5
    assert (m.num_frames, m.height, m.width, m.num_inference_steps) == (9, 32, 48, 3)
    assert m.adapter_version == "base" and m.model_version.startswith("lift-tiny-cogvideox@")
    assert m.timings.total_ms >= m.timings.denoise_ms > 0
    # the reported seed reproduces the video
    again = engine.generate(
        engine.resolve(GenerationRequest("a bird", seed=m.seed, fps=12.5, **SMALL)), Deadline()
    )
    assert np.array_equal(frames_of(v.data), frames_of(again.data))


def test_cancel_stops_denoising_and_frees_the_model(engine) -> None:
    deadline = Deadline()
    events: list[Progress] = []

    def on_progress(p: Progress) -> None:
        events.append(p)
        if p.stage == Stage.DENOISING and p.step == 2:
            deadline.cancel()

    req = engine.resolve(GenerationRequest("a dog", seed=1, **{**SMALL, "num_inference_steps": 50}))
    with pytest.raises(Cancelled):
        engine.generate(req, deadline, on_progress)
    assert max(e.step for e in events) <= 3 and all(e.stage != Stage.DECODING for e in events)
    assert frames_of(gen(engine)).shape[0] == 9  # the model lock was released


def test_passed_deadline_stops_the_work(engine) -> None:
    with pytest.raises(DeadlineExceeded):
        engine.generate(engine.resolve(GenerationRequest("a dog", **SMALL)), Deadline(0.0))


def test_waiting_for_the_model_honours_the_deadline(engine) -> None:
    engine._model_lock.acquire()
    try:
        with pytest.raises(DeadlineExceeded):
            engine.generate(engine.resolve(GenerationRequest("a dog", **SMALL)), Deadline(0.2))
    finally:
        engine._model_lock.release()


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "   \n"}, "prompt is empty"),
        ({"prompt": "x" * 2001}, "prompt is longer"),
        ({"negative_prompt": "x" * 2001}, "negative_prompt is longer"),
        ({"num_frames": 0}, "num_frames"),
        ({"num_frames": 1000}, "num_frames"),
        ({"height": 33}, "height must be even"),
        ({"width": 8}, "width must be between"),
        ({"height": 4096}, "height must be between"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 10_000}, "num_inference_steps"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"guidance_scale": 1e9}, "guidance_scale"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"fps": 0.0}, "fps"),
        ({"fps": float("inf")}, "fps"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"adapter_version": "has space"}, "not a valid label"),
    ],
)
def test_bad_requests_say_what_to_fix(engine, fields, needle: str) -> None:
    req = GenerationRequest(**{"prompt": "a dog", **SMALL, **fields})
    with pytest.raises(InvalidInput, match=needle):
        engine.resolve(req)


def test_unknown_adapter_version_is_not_found(engine) -> None:
    with pytest.raises(NotFound, match="not loaded"):
        gen(engine, adapter_version="v-missing")


def test_generations_from_threads_are_serialised_and_each_correct(engine) -> None:
    ref = {s: frames_of(gen(engine, seed=s)) for s in (1, 2, 3)}
    out: dict[int, np.ndarray] = {}

    def work(s: int) -> None:
        out[s] = frames_of(gen(engine, seed=s))

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (1, 2, 3):
        assert np.array_equal(out[s], ref[s])
