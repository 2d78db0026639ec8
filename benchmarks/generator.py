"""What the generator service adds on top of a bare diffusers call, on the tiny CogVideoX.

Timed in one run, interleaved, median of N, the same request each time (49 frames of
64x96, ``--steps`` denoising steps, fixed seed):
* bare: ``pipe(..., output_type="np")`` — the floor any server of this model pays;
* engine: the generator's whole in-process path (checks, model lock, adapter choice,
  progress callbacks, uint8 conversion, H.264 encoding);
* gRPC: a streamed ``Generate`` through the running service (progress events included).

The tiny model's denoiser is cheap, so this is a worst case for overhead: with a real
model the denoising dominates and the ratios go to 1.

    make bench            # or: .venv/bin/python -m benchmarks.generator --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lift.client import GeneratorClient
from lift.generation import GenerationRequest
from lift.runner import start_in_thread
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.serving import Deadline
from lift.t2v.tiny import write_tiny_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = write_tiny_generator(Path(tmp) / "tiny")
        settings = GeneratorSettings(model=model, grpc_port=0, http_port=0, log_level="WARNING")
        runner, stop = start_in_thread(build_generator, settings)
        engine = runner.load.__self__  # type: ignore[attr-defined]
        req = GenerationRequest("a dog runs on the beach", seed=1, num_inference_steps=args.steps)
        resolved = engine.resolve(req)
        d = engine.spec.defaults

        def bare() -> None:
            engine.pipe(
                prompt=req.prompt,
                num_frames=d.num_frames,
                height=d.height,
                width=d.width,
                num_inference_steps=args.steps,
                guidance_scale=d.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(1),
                output_type="np",
            )

        times: dict[str, list[float]] = {"bare": [], "engine": [], "grpc": []}
        with GeneratorClient(f"127.0.0.1:{runner.grpc_port}") as client:
            runs = {
                "bare": bare,
                "engine": lambda: engine.generate(resolved, Deadline()),
                "grpc": lambda: client.generate(req),
            }
            for fn in runs.values():
                fn()  # warm-up
            for _ in range(args.runs):
                for name, fn in runs.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
        stop()

    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"generator, tiny CogVideoX, {d.num_frames} frames {d.width}x{d.height}, "
        f"{args.steps} steps, median of {args.runs}:"
    )
    for name in ("bare", "engine", "grpc"):
        print(f"  {name:7s} {med[name] * 1000:8.1f} ms   x{med[name] / med['bare']:.2f} of bare")


if __name__ == "__main__":
    main()
