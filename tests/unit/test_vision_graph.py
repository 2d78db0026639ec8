"""The exported vision graph and the onnx backend against the torch critic (tiny model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm import vision_graph as vg
from lift.serving import Deadline

NEVER = Deadline().check


def test_export_writes_graph_and_metadata(graph_dir: Path) -> None:
    import onnx

    model = onnx.load(str(graph_dir / vg.GRAPH_FILE))
    onnx.checker.check_model(model)
    names = [i.name for i in model.graph.input]
    assert names == list(vg.INPUTS)
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim[:3]]
    assert dims == ["batch", "steps", "patches"]  # dynamic batch (and video shape)


def test_onnx_embeddings_match_the_torch_tower(
    tiny_critic_dir: Path, graph_dir: Path, mixed_videos
):
    torch_backend = VlmBackend(VlmOptions(model=tiny_critic_dir))
    family, model = torch_backend.family, torch_backend.scorer.model
    inputs = [family.prepare(v.frames, 0.125) for v in mixed_videos]
    inputs.append(
        family.prepare(mixed_videos[0].frames[:, :, : mixed_videos[0].frames.shape[2] // 2], 0.125)
    )
    shapes = [(i.grid[0], i.grid[1] * i.grid[2]) for i in inputs]
    assert len(set(shapes)) >= 2 and max(shapes.count(s) for s in shapes) >= 2  # batch > 1
    ref = family.encode_videos(model, inputs)
    onnx_encoder = vg.OnnxEncoder(vg.vision_module(model, family.name), graph_dir)
    got = onnx_encoder.encode(inputs)
    for a, b in zip(ref, got, strict=True):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) < 1e-4


def test_onnx_backend_label_probabilities_match_torch(
    tiny_critic_dir: Path, graph_dir: Path, mixed_videos
) -> None:
    torch_backend = VlmBackend(VlmOptions(model=tiny_critic_dir))
    onnx_backend = VlmBackend(
        VlmOptions(model=tiny_critic_dir, vision="onnx", vision_graph=graph_dir)
    )
    assert onnx_backend.model.backend == "onnx"
    prompts = ["a red ball rolls", "waves at sunset", "a dog runs"]

    def probs(b: VlmBackend) -> np.ndarray:
        prepared = [b.prepare(v, p, NEVER) for v, p in zip(mixed_videos, prompts, strict=True)]
        out = b.judge_batch(prepared, False, NEVER)
        return np.array(
            [
                [d.probabilities.good, d.probabilities.normal, d.probabilities.bad]
                for j in out
                for d in j.dimensions
            ]  # type: ignore[union-attr]
        )

    a, b = probs(torch_backend), probs(onnx_backend)
    assert a.shape == (9, 3)
    assert np.abs(a - b).max() < 1e-4


def test_graph_from_another_checkpoint_is_refused(
    tiny_critic_dir: Path, graph_dir: Path, tmp_path: Path
) -> None:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    other = write_tiny_critic(tmp_path / "other", seed=1)
    # Same architecture and file sizes, other weights: only the probe can tell.
    with pytest.raises(ValueError, match="exported from other weights"):
        VlmBackend(VlmOptions(model=other, vision="onnx", vision_graph=graph_dir))
    with pytest.raises(ValueError, match="LIFT_CRITIC_VISION_GRAPH"):
        VlmBackend(VlmOptions(model=tiny_critic_dir, vision="onnx"))
    with pytest.raises(ValueError, match=r"vision\.json is missing"):
        VlmBackend(VlmOptions(model=tiny_critic_dir, vision="onnx", vision_graph=tmp_path))


def test_export_refuses_what_it_cannot_export(tmp_path: Path) -> None:
    from lift.errors import InvalidInput
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    with pytest.raises(InvalidInput, match=r"no config\.json"):
        vg.export(tmp_path / "missing", tmp_path / "out")
    qwen25 = write_tiny_critic(tmp_path / "q25", family="qwen2_5_vl")
    with pytest.raises(InvalidInput, match="Qwen2-VL critics"):
        vg.export(qwen25, tmp_path / "out")
