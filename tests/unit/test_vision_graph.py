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
                [d.probabilities.good, d.probabilities.normal, d.probabilities.bad]  # type: ignore[union-attr]
                for j in out
                for d in j.dimensions
            ]
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
    with pytest.raises(InvalidInput, match="VILA and Qwen2-VL critics"):
        vg.export(qwen25, tmp_path / "out")


# -- VILA: SigLIP (cut at the selected layer) + projector, frames as the batch -----------------

VILA = "lift-13b"


@pytest.fixture(scope="module")
def vila_graph_dir(tiny_vila_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vila-graph")
    vg.export(tiny_vila_dir, out)
    return out


@pytest.fixture(scope="module")
def vila_torch(tiny_vila_dir: Path) -> VlmBackend:
    return VlmBackend(VlmOptions(model=tiny_vila_dir, templates=VILA))


def _probs(b: VlmBackend, videos) -> np.ndarray:
    prompts = ["a red ball rolls", "waves at sunset", "a dog runs"]
    prepared = [b.prepare(v, p, NEVER) for v, p in zip(videos, prompts, strict=True)]
    return np.array(
        [
            [d.probabilities.good, d.probabilities.normal, d.probabilities.bad]  # type: ignore[union-attr]
            for j in b.judge_batch(prepared, False, NEVER)
            for d in j.dimensions
        ]
    )


def test_vila_export_takes_frames_as_its_dynamic_batch(vila_graph_dir: Path) -> None:
    import json

    import onnx

    model = onnx.load(str(vila_graph_dir / vg.GRAPH_FILE))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["pixels"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "frames" and [d.dim_value for d in dims[1:]] == [3, 70, 70]
    meta = json.loads((vila_graph_dir / vg.META_FILE).read_text())
    assert meta["family"] == "vila" and meta["inputs"] == ["pixels"]


def test_vila_onnx_embeddings_match_the_torch_tower(
    vila_torch: VlmBackend, vila_graph_dir: Path, mixed_videos
) -> None:
    family, model = vila_torch.family, vila_torch.scorer.model
    inputs = [family.prepare(v.frames, 0.125) for v in mixed_videos]
    assert len({i.grid[0] for i in inputs}) >= 2  # videos of different frame counts, one batch
    ref = family.encode_videos(model, inputs)
    got = vg.OnnxEncoder(vg.vision_module(model, family), vila_graph_dir).encode(inputs)
    diffs = []
    for a, b, i in zip(ref, got, inputs, strict=True):
        assert a.shape == b.shape and a.shape[0] == i.num_tokens
        diffs.append(float((a - b).abs().max()))
    print(f"vila onnx embeddings: max diff {max(diffs):.3g}")
    assert max(diffs) < 1e-4


def test_vila_onnx_backend_label_probabilities_match_vlm(
    vila_torch: VlmBackend, tiny_vila_dir: Path, vila_graph_dir: Path, mixed_videos
) -> None:
    onnx_backend = VlmBackend(
        VlmOptions(model=tiny_vila_dir, templates=VILA, vision="onnx", vision_graph=vila_graph_dir)
    )
    assert onnx_backend.model.backend == "onnx"
    assert isinstance(onnx_backend.scorer.family, vg.EncoderFamily)
    a, b = _probs(vila_torch, mixed_videos), _probs(onnx_backend, mixed_videos)
    assert a.shape == (9, 3)
    print(f"vila onnx label probabilities: max diff {np.abs(a - b).max():.3g}")
    assert np.abs(a - b).max() < 1e-4


def test_vila_graph_of_another_family_checkpoint_or_adapter_is_refused(
    tiny_vila_dir: Path,
    tiny_vila_lora_dir: Path,
    tiny_critic_dir: Path,
    graph_dir: Path,
    vila_graph_dir: Path,
    tmp_path: Path,
) -> None:
    from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila

    other = write_tiny_vila(tmp_path / "other", seed=1)
    # Same architecture and file sizes, other weights: only the probe can tell.
    with pytest.raises(ValueError, match="exported from other weights"):
        VlmBackend(
            VlmOptions(model=other, templates=VILA, vision="onnx", vision_graph=vila_graph_dir)
        )
    with pytest.raises(ValueError, match="exported for the qwen2_vl family"):
        VlmBackend(
            VlmOptions(model=tiny_vila_dir, templates=VILA, vision="onnx", vision_graph=graph_dir)
        )
    with pytest.raises(ValueError, match="exported for the vila family"):
        VlmBackend(VlmOptions(model=tiny_critic_dir, vision="onnx", vision_graph=vila_graph_dir))
    with pytest.raises(ValueError, match="another checkpoint or adapter"):
        VlmBackend(
            VlmOptions(
                model=tiny_vila_dir,
                adapter=tiny_vila_lora_dir,
                templates=VILA,
                vision="onnx",
                vision_graph=vila_graph_dir,
            )
        )


def test_vila_onnx_with_an_adapter_exported_alike(
    tiny_vila_dir: Path, tiny_vila_lora_dir: Path, mixed_videos, tmp_path: Path
) -> None:
    out = tmp_path / "graph"
    vg.export(tiny_vila_dir, out, adapter=tiny_vila_lora_dir)
    opts = {"model": tiny_vila_dir, "adapter": tiny_vila_lora_dir, "templates": VILA}
    torch_backend = VlmBackend(VlmOptions(**opts))  # type: ignore[arg-type]
    onnx_backend = VlmBackend(VlmOptions(**opts, vision="onnx", vision_graph=out))  # type: ignore[arg-type]
    a, b = _probs(torch_backend, mixed_videos), _probs(onnx_backend, mixed_videos)
    print(f"vila+adapter onnx label probabilities: max diff {np.abs(a - b).max():.3g}")
    assert np.abs(a - b).max() < 1e-4
    # The adapter changes the vision side (LiFT retrains the projector): a plain graph would
    # compute other embeddings, so exporting with the adapter matters.
    plain = VlmBackend(VlmOptions(model=tiny_vila_dir, templates=VILA))
    probe = vg.vision_module(plain.scorer.model, plain.family).probe()
    e_plain = plain.family.encode_videos(plain.scorer.model, [probe])[0]
    e_adapted = torch_backend.family.encode_videos(torch_backend.scorer.model, [probe])[0]
    assert float((e_plain - e_adapted).abs().max()) > 1e-3


def test_qwen_export_refuses_an_adapter(
    tiny_critic_dir: Path, tiny_vila_lora_dir: Path, tmp_path: Path
) -> None:
    from lift.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--adapter"):
        vg.export(tiny_critic_dir, tmp_path / "out", adapter=tiny_vila_lora_dir)
