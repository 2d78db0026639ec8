"""A full `signal` critique versus a bare decode of the same 49-frame 480x720 H.264 clip.

Floors, each timed in the same run, interleaved, median of N:
* decode to RGB: PyAV decodes every frame and converts it to an RGB ndarray,
  which is what any consumer of the pixels pays (the headline floor);
* decode only: PyAV decodes every frame and converts nothing (libavcodec alone).

The critique is the engine's whole path (prompt and input checks, decode with
limits, measurements, rules, labels, reward), in-process.

    make bench            # or: .venv/bin/python -m benchmarks.critic_signal --runs 15
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import av

from lift.services.critic.engine import CriticEngine, VideoSource
from lift.services.critic.settings import CriticSettings
from lift.serving import Deadline
from lift.video.samples import make_sample


def _decode(data: bytes, rgb: bool) -> int:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = 0
        for frame in c.decode(s):
            if rgb:
                frame.to_ndarray(format="rgb24")
            n += 1
        return n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    data = make_sample("clean").encode("mp4")
    engine = CriticEngine(CriticSettings())
    engine.load()
    source = VideoSource(data=data)

    def critique() -> None:
        engine.critique(source, "colourful shapes glide across a textured wall", Deadline())

    cases = {
        "decode only": lambda: _decode(data, rgb=False),
        "decode to RGB": lambda: _decode(data, rgb=True),
        "signal critique": critique,
    }
    for fn in cases.values():  # warm up codecs, thread pools, caches
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(
        f"clip: 49 frames 480x720 H.264, {len(data)} bytes; median of {args.runs} interleaved runs"
    )
    for k, v in med.items():
        print(f"  {k:16s} {v:8.1f} ms")
    print(
        f"ratio critique / decode to RGB: {med['signal critique'] / med['decode to RGB']:.2f}  (target <= 1.5)"
    )
    print(f"ratio critique / decode only:   {med['signal critique'] / med['decode only']:.2f}")


if __name__ == "__main__":
    main()
