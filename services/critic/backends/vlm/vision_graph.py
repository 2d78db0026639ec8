"""The critic's vision tower + projector as a batched graph: ONNX export and runners.

Qwen2-VL's vision tower takes the patches of all videos concatenated with their
grids and splits attention per video using Python lists of lengths: that does
not export with a dynamic batch. :class:`BatchedVision` runs the same weights
on a ``(batch, patches, patch_dim)`` tensor instead (videos of one patch count
share a batch; attention is per video by construction) with the rotary tables
passed in, so the graph has plain dynamic ``batch`` and ``patches`` axes.

Everything else (tokenizing, the text decoder, label logits, reasons) stays in
torch; the ``onnx`` backend runs this graph on onnxruntime and the ``triton``
backend sends the same tensors to Triton Inference Server. Parity with the
torch tower is tested to 1e-4 on the tiny model.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lift.errors import InvalidInput
from lift.services.critic.backends.vlm.families.base import VisionInput

log = logging.getLogger(__name__)

GRAPH_FILE = "vision.onnx"
META_FILE = "vision.json"
INPUTS = ("pixels", "cos", "sin")
OUTPUT = "embeds"
OPSET = 18


class BatchedVision(nn.Module):
    """Qwen2-VL's vision tower and patch merger over ``(B, T, S, D)`` patches.

    ``T`` is the video's temporal grid and ``S`` its patches per temporal step:
    Qwen2-VL attends within one temporal step only, so attention runs over the
    ``(B * T, S)`` rows, and the merger's 2x2 windows are contiguous within a step.
    """

    def __init__(self, visual: Any) -> None:
        super().__init__()
        self.visual = visual
        cfg = visual.config
        self.heads = int(cfg.num_heads)
        self.merge = int(cfg.spatial_merge_size) ** 2

    def forward(self, pixels: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        v = self.visual
        b, t, s, d = pixels.shape
        rows = b * t
        x = v.patch_embed(pixels.reshape(rows * s, d)).reshape(rows, s, -1)
        cos = cos.reshape(rows, s, 1, -1)
        sin = sin.reshape(rows, s, 1, -1)
        for blk in v.blocks:
            h = blk.norm1(x)
            qkv = blk.attn.qkv(h).reshape(rows, s, 3, self.heads, -1)
            q, k, val = qkv.unbind(2)  # (rows, S, H, hd)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            att = torch.nn.functional.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), val.transpose(1, 2)
            )
            x = x + blk.attn.proj(att.transpose(1, 2).reshape(rows, s, -1))
            x = x + blk.mlp(blk.norm2(x))
        merged = v.merger.ln_q(x).reshape(b, t * s // self.merge, -1)
        out: torch.Tensor = v.merger.mlp(merged)
        return out


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def vision_module(model: Any, family: str) -> Any:
    """The vision tower of a loaded critic model; only Qwen2-VL's exports as a batch."""
    if family != "qwen2_vl":
        raise InvalidInput(
            f"the batched vision graph supports Qwen2-VL critics; this checkpoint is {family} "
            "(Qwen2.5-VL's windowed attention is not exported yet): use backend vlm"
        )
    visual: Any = model.model.visual
    return visual


@torch.no_grad()
def rotary(visual: Any, grid: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The (cos, sin) tables, (L, head_dim) float32, of one video's patch grid."""
    from transformers.vision_utils import get_vision_position_ids

    grid_t = torch.tensor([grid], dtype=torch.long)
    pos = get_vision_position_ids(grid_t, visual.spatial_merge_size, kwargs={})
    dummy = torch.zeros(1, dtype=torch.float32)
    cos, sin = visual.rotary_pos_emb(dummy, pos)
    return cos.float().numpy(), sin.float().numpy()


@dataclass
class _Group:
    pixels: list[np.ndarray]
    cos: list[np.ndarray]
    sin: list[np.ndarray]
    index: list[int]


class BatchingEncoder:
    """Replaces ``family.encode_videos``: groups videos by (steps, patches), runs ``infer`` per group."""

    def __init__(self, visual: Any) -> None:
        self.visual = visual
        self._tables: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _rotary(self, grid: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        if grid not in self._tables:
            if len(self._tables) > 256:  # bounded: one entry per distinct video shape
                self._tables.clear()
            self._tables[grid] = rotary(self.visual, grid)
        return self._tables[grid]

    def groups(self, videos: Sequence[VisionInput]) -> list[_Group]:
        """Videos with the same (T, S) batched together (their order kept in ``index``)."""
        by_shape: dict[tuple[int, int], _Group] = defaultdict(lambda: _Group([], [], [], []))
        for i, v in enumerate(videos):
            t, s = v.grid[0], v.grid[1] * v.grid[2]
            cos, sin = self._rotary(v.grid)
            g = by_shape[(t, s)]
            g.pixels.append(v.pixels.astype(np.float32, copy=False).reshape(t, s, -1))
            g.cos.append(cos.reshape(t, s, -1))
            g.sin.append(sin.reshape(t, s, -1))
            g.index.append(i)
        return list(by_shape.values())

    def infer(self, pixels: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """(B, T, S, D), (B, T, S, hd), (B, T, S, hd) -> (B, T * S / merge^2, hidden)."""
        raise NotImplementedError

    def encode(self, videos: list[VisionInput]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(videos)
        for g in self.groups(videos):
            embeds = self.infer(np.stack(g.pixels), np.stack(g.cos), np.stack(g.sin))
            for j, i in enumerate(g.index):
                out[i] = torch.from_numpy(np.ascontiguousarray(embeds[j]))
        return [t for t in out if t is not None]


def verify(encoder: BatchingEncoder, family: Any, model: Any) -> float:
    """Run one probe video through ``encoder`` and the torch tower; refuse a mismatch.

    Catches a graph exported from other weights (file fingerprints cannot tell two
    checkpoints of one architecture apart) and, for Triton, a server holding
    another model. Returns the largest absolute difference.
    """
    cfg = encoder.visual.config
    grid = (2, 2 * cfg.spatial_merge_size, 2 * cfg.spatial_merge_size)
    dim = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size**2
    pixels = np.random.default_rng(0).standard_normal((grid[0] * grid[1] * grid[2], dim))
    probe = VisionInput(pixels.astype(np.float32), grid, grid[0] * grid[1] * grid[2] // 4, 1.0)
    with torch.inference_mode():
        ref = family.encode_videos(model, [probe])[0].float().cpu()
    got = encoder.encode([probe])[0].float()
    diff = float((ref - got).abs().max())
    scale = 1e-3 if model.dtype == torch.float32 else 5e-2
    if not diff <= scale * (1.0 + float(ref.abs().max())):
        raise ValueError(
            f"the vision graph does not compute this checkpoint's vision tower (probe differs "
            f"by {diff:.3g}): it was exported from other weights; export it again from the "
            "critic's --model"
        )
    return diff


class OnnxEncoder(BatchingEncoder):
    """The exported graph on onnxruntime (CPU, or CUDA when its provider is installed)."""

    def __init__(self, visual: Any, graph_dir: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        super().__init__(visual)
        path = graph_dir / GRAPH_FILE
        if not path.is_file():
            raise ValueError(
                f"{path} is missing: export it with `lift critic export --model DIR --out "
                f"{graph_dir}`"
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)

    def infer(self, pixels: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        result = self.session.run([OUTPUT], {"pixels": pixels, "cos": cos, "sin": sin})
        return np.asarray(result[0])


def export(model_dir: Path, out_dir: Path) -> Path:
    """Export the critic checkpoint's vision graph to ``out_dir`` (ONNX + metadata)."""
    from lift.checkpoints import fingerprint, quiet_hf
    from lift.services.critic.backends.vlm.families import family_for

    quiet_hf()
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise InvalidInput(f"--model: {model_dir} has no config.json (a critic checkpoint dir)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    family = family_for(config.get("model_type", "?"), model_dir)
    model = family.load(model_dir, torch.float32, "cpu", "eager")
    visual = vision_module(model, family.name)
    graph = BatchedVision(visual).eval()
    cfg = visual.config
    patch_dim = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size**2
    head_dim = cfg.embed_dim // cfg.num_heads
    # Example: 2 videos of a 2x4x4 grid; batch, steps and patches are all dynamic.
    grid = (2, 4, 4)
    cos, sin = (torch.from_numpy(a.reshape(2, 16, -1)) for a in rotary(visual, grid))
    example = (torch.randn(2, 2, 16, patch_dim), torch.stack([cos, cos]), torch.stack([sin, sin]))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / GRAPH_FILE
    axes = {0: "batch", 1: "steps", 2: "patches"}
    torch.onnx.export(
        graph,
        example,
        str(path),
        input_names=list(INPUTS),
        output_names=[OUTPUT],
        dynamic_axes={"pixels": axes, "cos": axes, "sin": axes, OUTPUT: {0: "batch", 1: "tokens"}},
        opset_version=OPSET,
        dynamo=False,
    )
    meta = {
        "model": str(model_dir),
        "fingerprint": fingerprint(model_dir, None),
        "family": family.name,
        "patch_dim": patch_dim,
        "head_dim": head_dim,
        "hidden": int(cfg.hidden_size),
        "merge": int(cfg.spatial_merge_size) ** 2,
        "opset": OPSET,
        "inputs": list(INPUTS),
        "output": OUTPUT,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s vision graph to %s", family.name, path)
    return path


class TritonEncoder(BatchingEncoder):
    """The same graph served by Triton Inference Server, called with ``tritonclient.grpc.aio``.

    Each group of same-shaped videos is one request; Triton's dynamic batcher
    merges requests from every critic replica into its preferred batch sizes, so
    the critic stays a stateless front that scales horizontally.
    """

    def __init__(self, visual: Any, url: str, model: str, timeout_s: float) -> None:
        import asyncio
        import threading

        super().__init__(visual)
        self.url, self.model_name, self.timeout_s = url, model, timeout_s
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="triton-client", daemon=True).start()
        self._client = self._call(self._connect())

    def _call(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s + 5)

    async def _connect(self) -> Any:
        import tritonclient.grpc.aio as tc
        from tritonclient.utils import InferenceServerException

        client = tc.InferenceServerClient(self.url)
        try:
            ready = await client.is_model_ready(self.model_name)
        except InferenceServerException as exc:
            await client.close()
            raise ValueError(
                f"Triton at {self.url} is not reachable ({exc.message()}): start tritonserver "
                "with deploy/triton as its model repository, or set LIFT_CRITIC_TRITON_URL"
            ) from None
        if not ready:
            await client.close()
            raise ValueError(
                f"Triton at {self.url} has no ready model {self.model_name!r}: load "
                "deploy/triton/lift_critic_vision (with the exported vision.onnx), or set "
                "LIFT_CRITIC_TRITON_MODEL"
            )
        return client

    async def _infer(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        import tritonclient.grpc.aio as tc

        inputs = []
        for name, a in arrays.items():
            inp = tc.InferInput(name, list(a.shape), "FP32")
            inp.set_data_from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            inputs.append(inp)
        result = await self._client.infer(
            self.model_name,
            inputs,
            outputs=[tc.InferRequestedOutput(OUTPUT)],
            client_timeout=self.timeout_s,
        )
        return np.asarray(result.as_numpy(OUTPUT))

    def infer(self, pixels: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        from tritonclient.utils import InferenceServerException

        from lift.errors import NotReady

        try:
            out: np.ndarray = self._call(self._infer({"pixels": pixels, "cos": cos, "sin": sin}))
        except InferenceServerException as exc:
            # The caller learns that the vision server failed, not where it is or its trace.
            log.warning("Triton (%s) failed the vision call: %s", self.url, exc.message())
            raise NotReady(
                "the critic's vision server (Triton) failed the vision call; retry shortly"
            ) from None
        return out

    def close(self) -> None:
        """Close the channel and stop the client's event loop."""
        self._call(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)


class EncoderFamily:
    """A model family whose vision pass runs on ``encoder`` (everything else delegates)."""

    def __init__(self, family: Any, encoder: BatchingEncoder) -> None:
        self._family = family
        self.encoder = encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._family, name)

    def encode_videos(self, model: Any, videos: list[VisionInput]) -> list[torch.Tensor]:
        """The graph's embeddings, on the model's device and dtype."""
        out = self.encoder.encode(videos)
        return [t.to(device=model.device, dtype=model.dtype) for t in out]


def check_graph(graph_dir: Path, model_dir: Path) -> dict[str, Any]:
    """The export metadata, refusing a graph whose checkpoint fingerprint differs."""
    from lift.checkpoints import fingerprint

    meta_path = graph_dir / META_FILE
    if not meta_path.is_file():
        raise ValueError(
            f"{meta_path} is missing: export the vision graph with `lift critic export --model "
            f"{model_dir} --out {graph_dir}`"
        )
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("fingerprint") != fingerprint(model_dir, None):
        raise ValueError(
            f"the vision graph in {graph_dir} was exported from another checkpoint "
            f"({meta.get('model')}); export it again from {model_dir}"
        )
    return meta
