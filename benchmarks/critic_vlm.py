"""The `vlm` critic on the tiny random checkpoint: batching, and Score versus Critique.

Measured in one run, interleaved, median of N:

* model level (prepared inputs, no decode): Score of 8 videos as one batch
  versus 8 batches of one; Score versus Critique (reasons) per video;
* service level (the engine's whole path with its micro-batcher, 8 client
  threads sending one-item Score requests): throughput with
  ``batch_max_size=8`` versus ``batch_max_size=1``.

The tiny model's numbers show the serving overheads batching removes, not a
real model's compute (see docs for GPU measurements when they exist).

    make bench            # or: .venv/bin/python -m benchmarks.critic_vlm --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm.tiny import write_tiny_critic
from lift.services.critic.engine import CriticEngine, VideoSource
from lift.services.critic.settings import CriticSettings
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video
from lift.video.samples import SAMPLE_NAMES, make_sample

PROMPT = "colourful shapes glide across a textured wall"
NEVER = Deadline().check


def _median_s(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--videos", type=int, default=8)
    args = parser.parse_args()
    n = args.videos
    clips = [make_sample(SAMPLE_NAMES[i % len(SAMPLE_NAMES)]).encode("mp4") for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_tiny_critic(Path(tmp) / "critic")
        backend = VlmBackend(VlmOptions(model=model_dir))
        videos = [decode_video(c, VideoLimits(), max_samples=8) for c in clips]
        items = [backend.prepare(v, PROMPT, NEVER) for v in videos]

        cases: dict[str, Callable[[], object]] = {
            "score, one batch": lambda: backend.judge_batch(items, False, NEVER),
            "score, batches of 1": lambda: [backend.judge_batch([i], False, NEVER) for i in items],
            "critique, batches of 1": lambda: [
                backend.judge_batch([i], True, NEVER) for i in items
            ],
        }
        for fn in cases.values():
            fn()
        per_round: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved so drift hits every case alike
            for name, fn in cases.items():
                per_round[name].append(_median_s(fn, 1))
        model = {name: statistics.median(ts) / n for name, ts in per_round.items()}

        def serve(batch: int) -> float:
            settings = CriticSettings(
                backend="vlm", model=model_dir, batch_max_size=batch, batch_max_wait_ms=5
            )
            engine = CriticEngine(settings)
            engine.load()
            sources = [VideoSource(data=c) for c in clips * 2]

            def one(src: VideoSource) -> object:
                return engine.score([(src, PROMPT)], Deadline())

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, sources))  # warm-up
                t0 = time.perf_counter()
                list(pool.map(one, sources))
                elapsed = time.perf_counter() - t0
            engine.close()
            return len(sources) / elapsed

        service: dict[int, list[float]] = {1: [], 8: []}
        for _ in range(max(3, args.runs // 2)):
            for batch in (1, 8):
                service[batch].append(serve(batch))

    print(f"tiny Qwen2-VL critic, {n} videos of 49 frames 480x720, 8 frames each, CPU")
    print("model level (prepared inputs), ms per video:")
    for name, s in model.items():
        print(f"  {name:<24} {1000 * s:8.1f}")
    s1, sb = model["score, batches of 1"], model["score, one batch"]
    print(f"  score throughput, batched vs unbatched: x{s1 / sb:.2f}")
    print(f"  critique vs score per video:            x{model['critique, batches of 1'] / s1:.2f}")
    v1, v8 = statistics.median(service[1]), statistics.median(service[8])
    print("service level (engine + micro-batcher, 8 client threads, one-item Score requests):")
    print(f"  batch_max_size=1: {v1:6.1f} videos/s")
    print(f"  batch_max_size=8: {v8:6.1f} videos/s   x{v8 / v1:.2f}")


if __name__ == "__main__":
    main()
