"""LoRA adapters on the tiny generator: validation, versions, hot swap, refusal."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save

from lift.errors import InvalidInput, NotFound
from lift.generation import CONFIG_FILE, WEIGHTS_FILE, AdapterFiles, GenerationRequest
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.settings import GeneratorSettings
from lift.serving import Deadline

SMALL = {"num_frames": 5, "height": 32, "width": 32, "num_inference_steps": 2}
Q = "transformer_blocks.0.attn1.to_q"


def frames_of(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture
def engine(tiny_generator_dir, generator_loras) -> GeneratorEngine:
    e = GeneratorEngine(GeneratorSettings(model=tiny_generator_dir, adapter_keep=2))
    e.load()
    return e


def make(engine: GeneratorEngine, version: str = "") -> tuple[np.ndarray, str]:
    req = GenerationRequest("a dog runs", seed=4, adapter_version=version, **SMALL)
    v = engine.generate(engine.resolve(req), Deadline())
    return frames_of(v.data), v.metadata.adapter_version


def files(lora_dir, **changes) -> AdapterFiles:
    return AdapterFiles(
        (lora_dir / WEIGHTS_FILE).read_bytes(), (lora_dir / CONFIG_FILE).read_text()
    )


def tensors(lora_dir) -> dict[str, torch.Tensor]:
    return load_file(str(lora_dir / WEIGHTS_FILE))


def test_adapter_changes_output_and_versions_are_reproducible(engine, generator_loras) -> None:
    base, version = make(engine)
    assert version == "base"
    r = engine.load_adapter("v1", files(generator_loras[0]))
    assert (r.version, r.previous_version, r.rank) == ("v1", "base", 4)
    assert r.modules == 8  # to_q, to_k, to_v, to_out.0 in each of 2 blocks
    # loading is not serving: a request naming no version still gets the base model
    still, version = make(engine)
    assert version == "base" and np.array_equal(still, base)
    one, version = make(engine, "v1")
    assert version == "v1" and np.abs(one.astype(int) - base).mean() > 1
    engine.load_adapter("v2", files(generator_loras[1]))
    engine.promote_adapter("v2")
    two, version = make(engine)
    assert version == "v2" and not np.array_equal(two, one)
    # a named version and the base model give exactly what they gave before
    assert np.array_equal(make(engine, "v1")[0], one)
    assert np.array_equal(make(engine, "base")[0], base)
    assert make(engine)[1] == "v2"


def test_weights_without_config_mean_alpha_equals_rank(engine, generator_loras) -> None:
    engine.load_adapter("with-config", files(generator_loras[0]))
    with_config = make(engine, "with-config")[0]
    weights_only = AdapterFiles((generator_loras[0] / WEIGHTS_FILE).read_bytes())
    engine.load_adapter("weights-only", weights_only)
    assert np.array_equal(make(engine, "weights-only")[0], with_config)
    config = json.loads((generator_loras[0] / CONFIG_FILE).read_text())
    config["lora_alpha"] = 4 * config["r"]
    engine.load_adapter("alpha-x4", AdapterFiles(weights_only.weights, json.dumps(config)))
    assert not np.array_equal(make(engine, "alpha-x4")[0], with_config)


def test_old_versions_are_unloaded_past_the_limit(engine, generator_loras) -> None:
    for i, version in enumerate(("a", "b", "c")):
        engine.load_adapter(version, files(generator_loras[i % 2]))
    assert engine.info().to_json()["current_adapter_version"] == "base"  # loads never promote
    assert [a["version"] for a in engine.info().to_json()["adapters"]] == ["c", "b"]
    with pytest.raises(NotFound, match="'a' is not loaded"):
        make(engine, "a")


def _bad_weights(lora_dir, kind: str) -> bytes:
    t = tensors(lora_dir)
    key_a = f"base_model.model.{Q}.lora_A.weight"
    key_b = f"base_model.model.{Q}.lora_B.weight"
    if kind == "foreign key":
        t["base_model.model.some.other.weight"] = torch.zeros(2, 2)
    elif kind == "missing module":
        t[key_a.replace("blocks.0", "blocks.9")] = t[key_a].clone()
        t[key_b.replace("blocks.0", "blocks.9")] = t[key_b].clone()
    elif kind == "wrong shape":
        t[key_a] = torch.zeros(4, 17)
    elif kind == "not a pair":
        t[key_a] = torch.zeros(3, t[key_a].shape[1])
    elif kind == "missing B":
        del t[key_b]
    elif kind == "nan":
        t[key_a] = t[key_a].clone()
        t[key_a][0, 0] = float("nan")
    elif kind == "conv module":
        t["base_model.model.patch_embed.proj.lora_A.weight"] = torch.zeros(4, 4)
        t["base_model.model.patch_embed.proj.lora_B.weight"] = torch.zeros(16, 4)
    elif kind == "integer":
        t[key_a] = t[key_a].to(torch.int32)
    return save(t)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("foreign key", "unexpected tensor"),
        ("missing module", "does not have"),
        ("wrong shape", "different model"),
        ("not a pair", "not a LoRA pair"),
        ("missing B", "lacks lora_B"),
        ("nan", "not finite"),
        ("conv module", "only Linear"),
        ("integer", "not finite floating point"),
    ],
)
def test_bad_weights_are_refused_and_the_old_version_keeps_serving(
    engine, generator_loras, kind: str, needle: str
) -> None:
    engine.load_adapter("good", files(generator_loras[0]))
    engine.promote_adapter("good")
    before = make(engine)[0]
    config = (generator_loras[0] / CONFIG_FILE).read_text()
    with pytest.raises(InvalidInput, match=needle):
        engine.load_adapter("bad", AdapterFiles(_bad_weights(generator_loras[0], kind), config))
    after, version = make(engine)
    assert version == "good" and np.array_equal(after, before)
    assert engine.info().to_json()["current_adapter_version"] == "good"


@pytest.mark.parametrize(
    ("weights", "config", "needle"),
    [
        (b"not safetensors at all", None, "not a safetensors file"),
        (save({}), None, "holds no tensors"),
        (None, "{not json", "not valid JSON"),
        (None, "[1, 2]", "JSON object"),
        (None, '{"peft_type": "IA3"}', "only LoRA"),
        (None, '{"peft_type": "LORA", "use_dora": true}', "DoRA"),
        (None, '{"r": -2}', "positive number"),
        (None, '{"r": 4, "lora_alpha": 4, "target_modules": ["proj_out"]}', "do not name it"),
    ],
)
def test_bad_files_are_refused(engine, generator_loras, weights, config, needle: str) -> None:
    good = (generator_loras[0] / WEIGHTS_FILE).read_bytes()
    with pytest.raises(InvalidInput, match=needle):
        engine.load_adapter("bad", AdapterFiles(weights or good, config))
    assert make(engine)[1] == "base"


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        ("", "not a valid label"),
        ("base", "reserved"),
        ("a b", "not a valid label"),
        ("x" * 129, "not a valid label"),
    ],
)
def test_bad_version_labels(engine, generator_loras, version: str, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        engine.load_adapter(version, files(generator_loras[0]))


def test_a_version_label_is_never_reused(engine, generator_loras) -> None:
    engine.load_adapter("v1", files(generator_loras[0]))
    with pytest.raises(InvalidInput, match="already loaded"):
        engine.load_adapter("v1", files(generator_loras[1]))


def test_adapters_by_uri_stay_under_the_root(tiny_generator_dir, generator_loras) -> None:
    root = generator_loras[0]
    engine = GeneratorEngine(GeneratorSettings(model=tiny_generator_dir, adapter_root=root))
    engine.load()
    assert engine.load_adapter("dir", root.as_uri()).modules == 8
    assert engine.load_adapter("file", (root / WEIGHTS_FILE).as_uri()).version == "file"
    with pytest.raises(InvalidInput, match="outside"):
        engine.load_adapter("outside", generator_loras[1].as_uri())
    with pytest.raises(NotFound):
        engine.load_adapter("missing", (root / "nope").as_uri())
    with pytest.raises(InvalidInput, match="file://"):
        engine.load_adapter("http", "https://example.com/adapter")


def test_uris_are_refused_without_a_root(engine, generator_loras) -> None:
    with pytest.raises(InvalidInput, match="disabled"):
        engine.load_adapter("dir", generator_loras[0].as_uri())


def test_an_adapter_load_that_outlives_its_deadline_installs_nothing(
    engine, generator_loras
) -> None:
    from lift.errors import DeadlineExceeded

    engine._model_lock.acquire()  # a long generation holds the model
    try:
        with pytest.raises(DeadlineExceeded):
            engine.load_adapter("late", files(generator_loras[0]), Deadline(0.2))
    finally:
        engine._model_lock.release()
    assert make(engine)[1] == "base"
    assert engine.load_adapter("late", files(generator_loras[0])).version == "late"
