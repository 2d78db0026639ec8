"""The critic under load with the torch, onnx and triton backends (tiny Qwen2-VL, CPU).

One run: for each backend a critic process (``lift critic serve``) on free
ports, then 1, 16 and 64 concurrent gRPC clients each sending one-video Score
requests back to back. Printed per (backend, clients): requests/s, p50 and p99
latency, the critic's mean micro-batch (videos per vision+text call, from its
/metrics) and, for triton, Triton's own mean batch (inferences per execution,
from Triton's metrics), and errors by code (RESOURCE_EXHAUSTED is the bounded
queue refusing work, by design, rather than latency growing without bound).

The tiny model's numbers show serving overheads and batching behaviour, not a
real model's compute: on 2 CPU cores the three backends share the same cores
(critic, Triton and the load generator).

    make bench            # or: .venv/bin/python -m benchmarks.critic_backends --requests 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import httpx
import numpy as np

from lift.client import AsyncCriticClient, CriticError
from lift.services.critic.backends.vlm import vision_graph
from lift.services.critic.backends.vlm.tiny import write_tiny_critic
from lift.video.encode import encode_video
from lift.video.samples import make_sample
from tools import triton
from tools.processes import StartError, free_port, wait_ready

PROMPT = "colourful shapes glide across a textured wall"
LEVELS = (1, 16, 64)


def _clip() -> bytes:
    """A small clip (16 frames, 160x120) so the model, not decoding, dominates."""
    frames = make_sample("clean").frames[:32:2]
    small = np.stack([cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA) for f in frames])
    return encode_video(small, 8.0, "mp4")


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _start_critic(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, int]:
    grpc_port, http_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "lift.cli.main", "critic", "serve"]
    cmd += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    proc = subprocess.Popen(cmd, env={**os.environ, **env, "LIFT_CRITIC_LOG_LEVEL": "WARNING"})
    what = f"critic ({env.get('LIFT_CRITIC_BACKEND')})"
    try:
        wait_ready(proc, f"http://127.0.0.1:{http_port}/readyz", what, timeout_s=180)
    except StartError as exc:
        proc.kill()
        raise SystemExit(f"{exc}: see its log above") from None
    return proc, grpc_port, http_port


async def _drive(address: str, clip: bytes, clients: int, requests: int) -> dict[str, object]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    left = requests

    async def worker(client: AsyncCriticClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            try:
                out = await client.score([(clip, PROMPT)])
                if isinstance(out[0], CriticError):
                    errors[out[0].code] += 1
                else:
                    latencies.append(time.perf_counter() - t0)
            except CriticError as exc:
                errors[exc.code] += 1

    async with AsyncCriticClient(address) as client:
        await client.score([(clip, PROMPT)])  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    lat = sorted(latencies) or [float("nan")]
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "errors": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=64, help="per level (64 clients: 2x)")
    args = parser.parse_args()
    clip = _clip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = write_tiny_critic(work / "critic")
        graph = work / "graph"
        vision_graph.export(model, graph)
        server = triton.start(work / "triton", env={"LIFT_VISION_GRAPH": str(graph)})
        try:
            base = {"LIFT_CRITIC_MODEL": str(model), "LIFT_CRITIC_VISION_GRAPH": str(graph)}
            for backend in ("vlm", "onnx", "triton"):
                env = {
                    **base,
                    "LIFT_CRITIC_BACKEND": backend,
                    "LIFT_CRITIC_TRITON_URL": server.grpc_url,
                }
                proc, grpc_port, http_port = _start_critic(env)
                try:
                    for clients in LEVELS:
                        before = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
                        tri_before = httpx.get(
                            f"http://127.0.0.1:{server.metrics_port}/metrics"
                        ).text
                        n = max(args.requests, 2 * clients)
                        r = asyncio.run(_drive(f"127.0.0.1:{grpc_port}", clip, clients, n))
                        after = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
                        tri_after = httpx.get(
                            f"http://127.0.0.1:{server.metrics_port}/metrics"
                        ).text
                        name = "lift_critic_micro_batch_size"
                        calls = _metric(after, name + "_count") - _metric(before, name + "_count")
                        vids = _metric(after, name + "_sum") - _metric(before, name + "_sum")
                        r["batch"] = vids / calls if calls else float("nan")
                        r["triton_batch"] = float("nan")
                        if backend == "triton":
                            inf = _metric(tri_after, "nv_inference_count") - _metric(
                                tri_before, "nv_inference_count"
                            )
                            exe = _metric(tri_after, "nv_inference_exec_count") - _metric(
                                tri_before, "nv_inference_exec_count"
                            )
                            r["triton_batch"] = inf / exe if exe else float("nan")
                        rows.append((backend, clients, r))
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
        finally:
            server.stop()
    names = {"vlm": "torch", "onnx": "onnx", "triton": "triton"}
    print("critic backends under load: tiny Qwen2-VL, one-video Score requests over gRPC, CPU")
    print(f"{'backend':<8}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'batch':>7}{'triton':>8}  errors")  # fmt: skip
    for backend, clients, r in rows:
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"  # type: ignore[attr-defined]
        tb = r["triton_batch"]
        print(
            f"{names[backend]:<8}{clients:>8}{r['rps']:>9.1f}{1000 * r['p50']:>9.1f}"  # type: ignore[operator]
            f"{1000 * r['p99']:>9.1f}{r['batch']:>7.2f}"  # type: ignore[operator]
            f"{'' if tb != tb else f'{tb:.2f}':>8}  {errs}"  # type: ignore[comparison-overlap]
        )
    by = {(b, c): r for b, c, r in rows}
    for c in LEVELS:
        t = by[("vlm", c)]["rps"]
        ratios = ", ".join(f"{names[b]} x{by[(b, c)]['rps'] / t:.2f}" for b in ("onnx", "triton"))  # type: ignore[operator]
        print(f"throughput vs torch at {c} clients: {ratios}")


if __name__ == "__main__":
    main()
