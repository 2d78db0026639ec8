"""vila start-up refusals a first-time user meets with a config that does not fit its weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm.families.vila import CheckpointError


def _copy_with(src: Path, dst: Path, part: str, **changes: Any) -> Path:
    shutil.copytree(src, dst)
    path = dst / part
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))
    return dst


@pytest.mark.parametrize(
    ("part", "change", "key"),
    [
        ("vision_tower/config.json", {"image_size": 84}, "position_embedding"),
        ("llm/config.json", {"intermediate_size": 96}, "mlp"),
    ],
)
def test_sizes_that_do_not_fit_the_weights_are_named_with_both_shapes(
    tmp_path: Path, tiny_vila_dir: Path, part: str, change: dict[str, Any], key: str
) -> None:
    """transformers only raises "look at the above report" (a log the service keeps quiet)."""
    root = _copy_with(tiny_vila_dir, tmp_path / "v", part, **change)
    if part.startswith("vision_tower"):  # keep the preprocessor in step with the tower
        prep = root / "vision_tower" / "preprocessor_config.json"
        raw = json.loads(prep.read_text())
        raw["size"] = {"height": 84, "width": 84}
        prep.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError) as err:
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    msg = str(err.value)
    assert "above report" not in msg
    assert part.split("/")[0] + "/" in msg and key in msg and "weights (" in msg, msg
    value = next(iter(change.values()))
    if key == "mlp":
        assert str(value) in msg  # the config's width appears in the shape it implies


def test_a_preprocessor_size_other_than_the_towers_is_refused_at_start(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    """Frames of another size than image_size fail in SigLIP on every request."""
    root = _copy_with(
        tiny_vila_dir,
        tmp_path / "v",
        "vision_tower/preprocessor_config.json",
        size={"height": 84, "width": 84},
    )
    with pytest.raises(CheckpointError, match=r"preprocessor_config.json.*84x84.*image_size"):
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))


_BUILD_INTERN = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from lift.services.critic.backends.vlm.families.vila import CheckpointError, _intern_tower
config = {"hidden_size": 4096, "num_attention_heads": 32, "intermediate_size": 16384,
          "num_hidden_layers": 48, "image_size": 56, "patch_size": 14}
try:
    _intern_tower(Path(sys.argv[1]) / "vision_tower", config)
except CheckpointError as exc:
    print("REFUSED", exc)
"""


def test_internvit_is_built_without_allocating_its_config_sizes(tmp_path: Path) -> None:
    """InternViT-6B is 5.9B parameters: built eagerly that is 24 GB of float32, randomly
    initialised, before the weights replace it. Here a config of ~10B parameters over tiny
    weights must be refused (missing layers, shapes) under a 6 GB address-space limit."""
    import subprocess
    import sys

    from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila

    root = write_tiny_vila(tmp_path / "v40", tower="intern")
    run = subprocess.run(
        [sys.executable, "-c", _BUILD_INTERN, str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "REFUSED" in run.stdout, run.stderr[-2000:]
    assert "vision_tower/: the weights do not fit" in run.stdout


@pytest.mark.parametrize("part", ["llm", "vision_tower"])
def test_more_layers_than_the_weights_hold_are_refused_before_building(
    tmp_path: Path, tiny_vila_dir: Path, part: str
) -> None:
    """transformers would build and initialise all 20000 layers before naming the missing ones."""
    held = json.loads((tiny_vila_dir / part / "config.json").read_text())["num_hidden_layers"]
    root = _copy_with(tiny_vila_dir, tmp_path / "v", f"{part}/config.json", num_hidden_layers=20000)
    with pytest.raises(CheckpointError) as err:
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    msg = str(err.value)
    assert f"{part}/" in msg and "num_hidden_layers 20000" in msg, msg
    assert f"hold {held} layers" in msg, msg


def test_a_prompt_holding_the_image_marker_is_refused_as_the_prompts_fault(
    tiny_vila_dir: Path,
) -> None:
    """LLaVA turns every <image> in the text into a frame: a caller's caption must not add one."""
    import numpy as np

    from lift.critique import DIMENSIONS

    backend = VlmBackend(VlmOptions(model=tiny_vila_dir, templates="lift-13b"))
    frames = np.random.default_rng(0).integers(0, 255, (4, 40, 60, 3), dtype=np.uint8)
    assert len(backend.scorer.prepare(frames, 0.1, "a cat on a mat", DIMENSIONS).rows) == 3
    with pytest.raises(ValueError, match="prompt contains '<image>'"):
        backend.scorer.prepare(frames, 0.1, "a cat <image> on a mat", DIMENSIONS)


def test_without_a_conversation_format_the_critic_does_not_start(tiny_vila_dir: Path) -> None:
    """Forgetting --templates lift-13b started a critic that failed every request."""
    with pytest.raises(ValueError, match=r"--templates lift-13b"):
        VlmBackend(VlmOptions(model=tiny_vila_dir))


def test_a_lora_directory_given_as_the_model_is_named_as_an_adapter(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila_lora

    lora = write_tiny_vila_lora(tiny_vila_dir, tmp_path / "LiFT-Critic-13b-lora")
    with pytest.raises(CheckpointError, match=r"llm/ folder is missing.*--adapter.*--model"):
        VlmBackend(VlmOptions(model=lora, templates="lift-13b"))


_LOAD_TOKENIZER = """
import sys
from pathlib import Path
from lift.services.critic.backends.vlm.families import family_for
root = Path(sys.argv[1])
family = family_for(sys.argv[2], root)
try:
    family.tokenizer(root)
    print("LOADED")
except ValueError as exc:
    print("REFUSED", exc)
"""


def test_a_tokenizer_with_checkpoint_code_is_refused_even_when_the_terminal_says_yes(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    """transformers asks on stdin whether to run an auto_map's code; the answer must not matter.

    llm/ has no model config of a known type beside its tokenizer_config.json, so
    transformers had no class of its own to fall back on and ran llm/own.py on "y".
    """
    import subprocess
    import sys

    root = tmp_path / "m"
    shutil.copytree(tiny_vila_dir, root)
    folder = root / "llm"
    marker = tmp_path / "ran.txt"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "OwnTokenizer"
    config["auto_map"] = {"AutoTokenizer": ["own.OwnTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "own.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaTokenizer\n"
        "class OwnTokenizer(LlamaTokenizer):\n    pass\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_TOKENIZER, str(root), "llava_llama"],
        input="y\ny\ny\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "REFUSED" in run.stdout and "custom code" in run.stdout, run.stdout + run.stderr[-2000:]
    assert not marker.exists()


def test_a_malformed_max_length_is_refused_naming_the_field(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    root = _copy_with(
        tiny_vila_dir, tmp_path / "v", "llm/config.json", tokenizer_model_max_length="4k"
    )
    with pytest.raises(CheckpointError, match="tokenizer_model_max_length"):
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_sizes_are_refused_naming_the_field(
    tmp_path: Path, tiny_vila_dir: Path, value: float
) -> None:
    """json reads Infinity and NaN; int() of them raised OverflowError / a bare ValueError."""
    root = _copy_with(tiny_vila_dir, tmp_path / "v", "vision_tower/config.json", image_size=value)
    with pytest.raises(CheckpointError, match="vision image_size must be a whole number"):
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
        ({"image_mean": [0.5, float("nan"), 0.5]}, "image_mean"),
        ({"rescale_factor": float("inf")}, "rescale_factor"),
    ],
)
def test_preprocessing_that_would_make_frames_non_finite_is_refused(
    tmp_path: Path, tiny_vila_dir: Path, change: dict[str, Any], field: str
) -> None:
    """Accepted, these turned every frame into inf/NaN and every answer into noise."""
    root = _copy_with(
        tiny_vila_dir, tmp_path / "v", "vision_tower/preprocessor_config.json", **change
    )
    with pytest.raises(CheckpointError, match=field):
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))
