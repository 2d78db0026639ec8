"""The critic's vision tower + projector as a batched graph: ONNX export and runners.

Each supported family has a :class:`VisionGraph`: the module exported, its input
names, example inputs and dynamic axes, how a batch of :class:`VisionInput` becomes
graph inputs, and how the output splits back per video.

* Qwen2-VL (:class:`QwenGraph`): the vision tower takes the patches of all videos
  concatenated with their grids and splits attention per video using Python lists
  of lengths, which does not export with a dynamic batch. :class:`BatchedVision`
  runs the same weights on a ``(batch, steps, patches, patch_dim)`` tensor instead
  (videos of one shape share a batch; attention is per video by construction) with
  the rotary tables passed in. Inputs ``pixels``, ``cos``, ``sin``.
* VILA (:class:`VilaGraph`): SigLIP (already cut at the selected layer by
  ``VilaFamily.finish``) and the projector, frame by frame: input ``pixels``
  ``(frames, 3, H, W)`` with a dynamic frames axis, output ``(frames,
  tokens_per_frame, hidden)``, exactly ``VilaFamily.frame_features``. All frames of
  all videos in a call run as one batch.

Everything else (tokenizing, the text decoder, label logits, reasons) stays in
torch; the ``onnx`` backend runs this graph on onnxruntime and the ``triton``
backend sends the same tensors to Triton Inference Server (whose model takes its
inputs from the graph it serves). Parity with the torch tower is tested to 1e-4 on
the tiny models.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
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
"""Qwen2-VL's graph inputs (VILA's graph takes ``pixels`` only)."""
OUTPUT = "embeds"
OPSET = 18
FAMILIES = ("qwen2_vl", "vila")


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


class VilaVision(nn.Module):
    """VILA's SigLIP tower and projector over ``(frames, 3, H, W)``: ``family.frame_features``."""

    def __init__(self, model: Any, family: Any) -> None:
        super().__init__()
        # Registered so that export sees their weights as parameters of this module.
        self.tower = model.vision_tower
        self.projector = model.mm_projector
        self._model = [model]  # not a submodule: the language model is not exported
        self._family = family

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._family.frame_features(self._model[0], pixels)
        return out


@dataclass
class Batch:
    """One graph call: its inputs, and for each row of its output which video it feeds."""

    feeds: dict[str, np.ndarray]
    index: list[int] = field(default_factory=list)
    """Qwen2-VL: the video of each batch row. VILA: the video of each run of frames."""
    counts: list[int] = field(default_factory=list)
    """VILA: frames per video, in ``index`` order (empty for one row per video)."""


class VisionGraph:
    """What one family exports and how its videos become graph inputs (see subclasses)."""

    family: str = ""
    inputs: tuple[str, ...] = ()
    adapters = False
    """Whether an adapter may change the exported weights (export and serve with the same)."""
    module: nn.Module

    def example(self) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        """Family-specific entries of ``vision.json``."""
        raise NotImplementedError

    def batches(self, videos: Sequence[VisionInput]) -> list[Batch]:
        raise NotImplementedError

    def split(self, out: np.ndarray, batch: Batch) -> list[tuple[int, torch.Tensor]]:
        """(video index, embeddings (tokens, hidden)) of each video in ``batch``."""
        raise NotImplementedError

    def probe(self) -> VisionInput:
        """A random video of a shape the tower takes, for :func:`verify`."""
        raise NotImplementedError


class QwenGraph(VisionGraph):
    """Qwen2-VL: :class:`BatchedVision`; videos batched by (steps, patches)."""

    family = "qwen2_vl"
    inputs = INPUTS

    def __init__(self, visual: Any) -> None:
        self.visual = visual
        self.config = visual.config
        self.module = BatchedVision(visual).eval()
        self._tables: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _rotary(self, grid: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        if grid not in self._tables:
            if len(self._tables) > 256:  # bounded: one entry per distinct video shape
                self._tables.clear()
            self._tables[grid] = rotary(self.visual, grid)
        return self._tables[grid]

    @property
    def patch_dim(self) -> int:
        cfg = self.config
        return int(cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size**2)

    def example(self) -> tuple[torch.Tensor, ...]:
        # 2 videos of a 2x4x4 grid; batch, steps and patches are all dynamic.
        cos, sin = (torch.from_numpy(a.reshape(2, 16, -1)) for a in rotary(self.visual, (2, 4, 4)))
        return (
            torch.randn(2, 2, 16, self.patch_dim),
            torch.stack([cos, cos]),
            torch.stack([sin, sin]),
        )

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {0: "batch", 1: "steps", 2: "patches"}
        return {"pixels": axes, "cos": axes, "sin": axes, OUTPUT: {0: "batch", 1: "tokens"}}

    def meta(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "patch_dim": self.patch_dim,
            "head_dim": int(cfg.embed_dim // cfg.num_heads),
            "hidden": int(cfg.hidden_size),
            "merge": int(cfg.spatial_merge_size) ** 2,
        }

    def batches(self, videos: Sequence[VisionInput]) -> list[Batch]:
        """Videos with the same (T, S) batched together (their order kept in ``index``)."""
        parts: dict[tuple[int, int], dict[str, list[np.ndarray]]] = defaultdict(
            lambda: {n: [] for n in INPUTS}
        )
        index: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, v in enumerate(videos):
            t, s = v.grid[0], v.grid[1] * v.grid[2]
            cos, sin = self._rotary(v.grid)
            g = parts[(t, s)]
            g["pixels"].append(v.pixels.astype(np.float32, copy=False).reshape(t, s, -1))
            g["cos"].append(cos.reshape(t, s, -1))
            g["sin"].append(sin.reshape(t, s, -1))
            index[(t, s)].append(i)
        return [
            Batch({n: np.stack(a) for n, a in g.items()}, index[key]) for key, g in parts.items()
        ]

    def split(self, out: np.ndarray, batch: Batch) -> list[tuple[int, torch.Tensor]]:
        return [
            (i, torch.from_numpy(np.ascontiguousarray(out[j]))) for j, i in enumerate(batch.index)
        ]

    def probe(self) -> VisionInput:
        cfg = self.config
        grid = (2, 2 * cfg.spatial_merge_size, 2 * cfg.spatial_merge_size)
        n = grid[0] * grid[1] * grid[2]
        pixels = np.random.default_rng(0).standard_normal((n, self.patch_dim))
        return VisionInput(pixels.astype(np.float32), grid, n // 4, 1.0)


class VilaGraph(VisionGraph):
    """VILA: :class:`VilaVision`; all frames of all videos in one batch."""

    family = "vila"
    inputs = ("pixels",)
    adapters = True  # LiFT LoRA dirs change the projector: export with the same --adapter

    def __init__(self, model: Any, family: Any) -> None:
        if not family.tokens_per_frame:
            raise ValueError("the vila family is not finished (call family.finish(model) first)")
        self.module = VilaVision(model, family).eval()
        self.tokens_per_frame = int(family.tokens_per_frame)
        self.height, self.width = int(family.prep.height), int(family.prep.width)
        self.hidden = int(family.layout.hidden)

    def example(self) -> tuple[torch.Tensor, ...]:
        return (torch.randn(2, 3, self.height, self.width),)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"pixels": {0: "frames"}, OUTPUT: {0: "frames"}}

    def meta(self) -> dict[str, Any]:
        return {
            "image_size": [self.height, self.width],
            "tokens_per_frame": self.tokens_per_frame,
            "hidden": self.hidden,
        }

    def batches(self, videos: Sequence[VisionInput]) -> list[Batch]:
        frames = [v.pixels.astype(np.float32, copy=False) for v in videos]
        if not frames:
            return []
        return [
            Batch(
                {"pixels": np.concatenate(frames)},
                list(range(len(videos))),
                [len(f) for f in frames],
            )
        ]

    def split(self, out: np.ndarray, batch: Batch) -> list[tuple[int, torch.Tensor]]:
        result, start = [], 0
        for i, n in zip(batch.index, batch.counts, strict=True):
            emb = np.ascontiguousarray(out[start : start + n]).reshape(
                n * self.tokens_per_frame, -1
            )
            result.append((i, torch.from_numpy(emb)))
            start += n
        return result

    def probe(self) -> VisionInput:
        pixels = np.random.default_rng(0).standard_normal((2, 3, self.height, self.width))
        side = int(np.sqrt(self.tokens_per_frame))
        grid = (2, side, self.tokens_per_frame // max(side, 1))
        return VisionInput(pixels.astype(np.float32), grid, 2 * self.tokens_per_frame, 1.0)


def vision_module(model: Any, family: Any) -> VisionGraph:
    """The exportable vision graph of a loaded critic model (``family``: the family or its name).

    VILA needs the finished family object (its select feature and tokens per frame).
    """
    name = family if isinstance(family, str) else family.name
    if name == "qwen2_vl":
        return QwenGraph(model.model.visual)
    if name == "vila" and not isinstance(family, str):
        return VilaGraph(model, family)
    raise InvalidInput(
        f"the batched vision graph supports VILA and Qwen2-VL critics; this checkpoint is {name} "
        "(Qwen2.5-VL's windowed attention is not exported yet): use backend vlm"
    )


@torch.no_grad()
def rotary(visual: Any, grid: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The (cos, sin) tables, (L, head_dim) float32, of one video's patch grid."""
    from transformers.vision_utils import get_vision_position_ids

    grid_t = torch.tensor([grid], dtype=torch.long)
    pos = get_vision_position_ids(grid_t, visual.spatial_merge_size, kwargs={})
    dummy = torch.zeros(1, dtype=torch.float32)
    cos, sin = visual.rotary_pos_emb(dummy, pos)
    return cos.float().numpy(), sin.float().numpy()


class BatchingEncoder:
    """Replaces ``family.encode_videos``: the graph's batches, each run by ``infer``."""

    def __init__(self, graph: VisionGraph) -> None:
        self.graph = graph

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's output for one batch of inputs (named as ``graph.inputs``)."""
        raise NotImplementedError

    def encode(self, videos: list[VisionInput]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(videos)
        for batch in self.graph.batches(videos):
            for i, emb in self.graph.split(self.infer(batch.feeds), batch):
                out[i] = emb
        return [t for t in out if t is not None]


def verify(encoder: BatchingEncoder, family: Any, model: Any) -> float:
    """Run one probe video through ``encoder`` and the torch tower; refuse a mismatch.

    Catches a graph exported from other weights (file fingerprints cannot tell two
    checkpoints of one architecture apart; an adapter's weights are checked the same
    way) and, for Triton, a server holding another model. Returns the largest
    absolute difference.
    """
    probe = encoder.graph.probe()
    with torch.inference_mode():
        ref = family.encode_videos(model, [probe])[0].float().cpu()
    got = encoder.encode([probe])[0].float()
    diff = float((ref - got).abs().max()) if ref.shape == got.shape else float("inf")
    scale = 1e-3 if model.dtype == torch.float32 else 5e-2
    if not diff <= scale * (1.0 + float(ref.abs().max())):
        raise ValueError(
            f"the vision graph does not compute this checkpoint's vision tower (probe differs "
            f"by {diff:.3g}): it was exported from other weights; export it again from the "
            "critic's --model (and --adapter)"
        )
    return diff


class OnnxEncoder(BatchingEncoder):
    """The exported graph on onnxruntime (CPU, or CUDA when its provider is installed)."""

    def __init__(self, graph: VisionGraph, graph_dir: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        super().__init__(graph)
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
        names = tuple(i.name for i in self.session.get_inputs())
        if names != graph.inputs:
            raise ValueError(
                f"{path} takes inputs {', '.join(names)}, not the {graph.family} graph's "
                f"({', '.join(graph.inputs)}): export it again from the critic's --model"
            )

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        result = self.session.run([OUTPUT], feeds)
        return np.asarray(result[0])


def export(model_dir: Path, out_dir: Path, adapter: Path | None = None) -> Path:
    """Export the critic checkpoint's vision graph to ``out_dir`` (ONNX + metadata).

    ``adapter``: a LoRA directory applied first (VILA only: LiFT adapters retrain the
    projector); the critic must then run with the same ``--adapter``.
    """
    from lift.checkpoints import fingerprint, quiet_hf
    from lift.services.critic.backends.vlm.families import family_for

    quiet_hf()
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise InvalidInput(f"--model: {model_dir} has no config.json (a critic checkpoint dir)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    family = family_for(config.get("model_type", "?"), model_dir)
    if family.name not in FAMILIES:
        vision_module(None, family.name)  # raises the unsupported-family error
    if adapter is not None and family.name != "vila":
        raise InvalidInput(
            f"--adapter: the {family.name} vision graph is exported without adapters (merge the "
            "adapter into a checkpoint and export from that)"
        )
    model = family.load(model_dir, torch.float32, "cpu", "eager")
    if adapter is not None:
        model = family.apply_adapter(model, adapter)
    family.finish(model)
    graph = vision_module(model, family)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / GRAPH_FILE
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks on fixed sizes (patches per frame) trace as constants, as intended.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graph.module,
            graph.example(),
            str(path),
            input_names=list(graph.inputs),
            output_names=[OUTPUT],
            dynamic_axes=graph.dynamic_axes(),
            opset_version=OPSET,
            dynamo=False,
        )
    meta = {
        "model": str(model_dir),
        "adapter": str(adapter) if adapter is not None else None,
        "fingerprint": fingerprint(model_dir, adapter),
        "family": family.name,
        **graph.meta(),
        "opset": OPSET,
        "inputs": list(graph.inputs),
        "output": OUTPUT,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s vision graph to %s", family.name, path)
    return path


class TritonEncoder(BatchingEncoder):
    """The same graph served by Triton Inference Server, called with ``tritonclient.grpc.aio``.

    Each batch is one request (split into requests of at most the model's
    ``max_batch_size`` rows: videos for Qwen2-VL, frames for VILA); Triton's dynamic
    batcher merges requests from every critic replica into its preferred batch
    sizes, so the critic stays a stateless front that scales horizontally.
    """

    def __init__(self, graph: VisionGraph, url: str, model: str, timeout_s: float) -> None:
        import asyncio
        import threading

        super().__init__(graph)
        self.url, self.model_name, self.timeout_s = url, model, timeout_s
        self.max_batch = 0
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
            config = (
                (await client.get_model_config(self.model_name, as_json=True))["config"]
                if ready
                else {}
            )
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
        names = tuple(i["name"] for i in config.get("input", []))
        if sorted(names) != sorted(self.graph.inputs):
            await client.close()
            raise ValueError(
                f"Triton model {self.model_name!r} at {self.url} takes inputs "
                f"{', '.join(names) or 'none'}: it serves another family's vision graph (this "
                f"critic is {self.graph.family}, inputs {', '.join(self.graph.inputs)}); export "
                "the critic's graph and point the server's LIFT_VISION_GRAPH at it"
            )
        self.max_batch = int(config.get("max_batch_size", 0))
        return client

    async def _infer(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        import asyncio

        import tritonclient.grpc.aio as tc

        async def one(part: dict[str, np.ndarray]) -> np.ndarray:
            inputs = []
            for name, a in part.items():
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

        rows = len(next(iter(arrays.values())))
        step = self.max_batch if self.max_batch > 0 else max(rows, 1)
        parts = [{n: a[s : s + step] for n, a in arrays.items()} for s in range(0, rows, step)]
        outs = await asyncio.gather(*(one(p) for p in parts))
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        from tritonclient.utils import InferenceServerException

        from lift.errors import NotReady

        try:
            out: np.ndarray = self._call(self._infer(feeds))
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


def check_graph(
    graph_dir: Path, model_dir: Path, family: str | None = None, adapter: Path | None = None
) -> dict[str, Any]:
    """The export metadata, refusing a graph of another family or checkpoint (and adapter)."""
    from lift.checkpoints import fingerprint

    meta_path = graph_dir / META_FILE
    if not meta_path.is_file():
        raise ValueError(
            f"{meta_path} is missing: export the vision graph with `lift critic export --model "
            f"{model_dir} --out {graph_dir}`"
        )
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    again = f"export it again from {model_dir}" + (f" with --adapter {adapter}" if adapter else "")
    if family is not None and meta.get("family") != family:
        raise ValueError(
            f"the vision graph in {graph_dir} was exported for the {meta.get('family')} family "
            f"({meta.get('model')}), this critic is {family}; {again}"
        )
    if meta.get("fingerprint") != fingerprint(model_dir, adapter):
        what = "another checkpoint" + (" or adapter" if adapter or meta.get("adapter") else "")
        raise ValueError(
            f"the vision graph in {graph_dir} was exported from {what} "
            f"({meta.get('model')}"
            + (f" + {meta['adapter']}" if meta.get("adapter") else "")
            + f"); {again}"
        )
    return meta
