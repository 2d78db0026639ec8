"""The reward_head protocol (VideoAlign's VideoReward) on its tiny published-layout checkpoint."""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lift.critique import DIMENSIONS, Dimension
from lift.services.critic.backends.vlm import VlmOptions, protocols
from lift.services.critic.backends.vlm.protocols.reward_head import (
    REWARD_TOKENS,
    RewardHeadBackend,
    canonical_name,
    probabilities,
    sample_indices,
)
from lift.services.critic.backends.vlm.tiny_videoalign import (
    TINY_INFERENCE,
    TINY_LORA_ALPHA,
    TINY_LORA_R,
    write_tiny_videoalign,
)
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video

NEVER = Deadline().check
PROMPT = "a red ball rolls across green grass"


@pytest.fixture(scope="module")
def tiny_va(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_videoalign(tmp_path_factory.mktemp("tiny-videoalign"))


@pytest.fixture(scope="module")
def backend(tiny_va: Path) -> RewardHeadBackend:
    return RewardHeadBackend(VlmOptions(model=tiny_va))


@pytest.fixture(scope="module")
def videos(mp4s: dict[str, bytes]):
    return {
        n: decode_video(mp4s[n], VideoLimits(), max_samples=64)
        for n in ("clean", "flicker", "blur")
    }


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_detect_and_create_pick_reward_head(tiny_va: Path, tiny_critic_dir: Path) -> None:
    assert protocols.detect(tiny_va) == "reward_head"
    assert protocols.detect(tiny_critic_dir) == "labels"
    assert "reward_head" in protocols.PROTOCOLS


def test_values_are_the_head_at_the_reward_tokens_normalised(backend, tiny_va, videos) -> None:
    """Hand computation with peft's own LoRA and transformers' own forward."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    item = backend.prepare(videos["clean"], PROMPT, NEVER)
    [values] = backend.values([item])

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_va / "base")).eval()
    model.resize_token_embeddings(len(backend.tokenizer), mean_resizing=False)
    ckpt = tiny_va / "checkpoint-4"
    non_lora = torch.load(ckpt / "non_lora_state_dict.pth", weights_only=True)
    head = non_lora.pop("base_model.model.rm_head.weight")
    own = model.state_dict()
    for k, v in non_lora.items():
        own[canonical_name(k)].copy_(v)
    targets = json.loads((ckpt / "adapter_config.json").read_text())["target_modules"]
    new_names = [
        "model.language_model." + t.removeprefix("model.") for t in targets
    ]  # VideoAlign saved the older layout
    config = LoraConfig(r=TINY_LORA_R, lora_alpha=TINY_LORA_ALPHA, target_modules=new_names)
    peft_model = get_peft_model(model, config)
    lora = {
        "base_model.model." + canonical_name(k): v
        for k, v in load_file(str(ckpt / "adapter_model.safetensors")).items()
    }
    result: Any = set_peft_model_state_dict(peft_model, lora)
    assert not [k for k in result.unexpected_keys if "lora" in k]

    ids = torch.tensor([item.ids])
    with torch.no_grad():
        inner: Any = peft_model.base_model.model
        out = inner.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            mm_token_type_ids=(ids == peft_model.config.video_token_id).int() * 2,
            pixel_values_videos=torch.from_numpy(item.vision.pixels),
            video_grid_thw=torch.tensor([item.vision.grid]),
        )
    hidden = out.last_hidden_state[0]
    token_ids = backend.tokenizer.convert_tokens_to_ids(list(REWARD_TOKENS))
    for d, (code, tid) in enumerate(zip(("VQ", "MQ", "TA"), token_ids, strict=True)):
        [at] = (ids[0] == tid).nonzero().flatten().tolist()
        raw = float(hidden[at] @ head[d])
        z = (raw - TINY_INFERENCE[f"{code}_mean"]) / TINY_INFERENCE[f"{code}_std"]
        assert values.raw[d] == pytest.approx(raw, abs=1e-4)
        assert values.normalised[d] == pytest.approx(z, abs=1e-4)
    assert values.overall == pytest.approx(sum(values.normalised), abs=1e-5)


def test_verdicts_follow_the_documented_mapping(backend, videos) -> None:
    item = backend.prepare(videos["flicker"], PROMPT, NEVER)
    [v] = backend.values([item])
    [j] = backend.judge_batch([item], True, NEVER)
    assert [d.name for d in j.dimensions] == list(DIMENSIONS)
    z = dict(
        zip(
            (Dimension.VIDEO_FIDELITY, Dimension.MOTION_SMOOTHNESS, Dimension.SEMANTIC_CONSISTENCY),
            v.normalised,
            strict=True,
        )
    )
    for d in j.dimensions:
        p = d.probabilities
        assert p is not None
        sig = 1 / (1 + math.exp(-(z[d.name] - 1)))
        assert p.good == pytest.approx(sig, abs=2e-6)
        assert p.bad == pytest.approx(1 / (1 + math.exp(z[d.name] + 1)), abs=2e-6)
        assert d.score == pytest.approx(p.good + p.normal / 2)
        assert d.label == p.most_likely()
        assert "normalised" in d.reasons[0] and "raw" in d.reasons[0]
    [scored] = backend.judge_batch([item], False, NEVER)
    assert all(d.reasons == () for d in scored.dimensions)


def test_probabilities_are_ordinal_and_monotone() -> None:
    zs = np.linspace(-4, 4, 41)
    goods = [probabilities(float(z)).good for z in zs]
    bads = [probabilities(float(z)).bad for z in zs]
    assert goods == sorted(goods) and bads == sorted(bads, reverse=True)
    assert probabilities(0.0).most_likely().value == "normal"
    assert probabilities(3.0).most_likely().value == "good"
    assert probabilities(-3.0).most_likely().value == "bad"
    # Far from the mean (or over a tiny std): math.exp overflowed, every request a 500.
    assert probabilities(1e4).good == 1.0 and probabilities(-1e4).bad == 1.0


@pytest.mark.parametrize("ties", [True, False])
def test_preferences_of_huge_head_differences_do_not_overflow(ties: bool) -> None:
    from types import SimpleNamespace

    judge = SimpleNamespace(config=SimpleNamespace(ties=ties))
    a_wins = RewardHeadBackend._preference(judge, 1e4)  # type: ignore[arg-type]
    b_wins = RewardHeadBackend._preference(judge, -1e4)  # type: ignore[arg-type]
    assert (a_wins.prob_a, a_wins.prob_b) == (1.0, 0.0)
    assert (b_wins.prob_a, b_wins.prob_b) == (0.0, 1.0)


def test_repeats_identical_and_batch_equals_sequential(backend, videos) -> None:
    items = [backend.prepare(videos[n], PROMPT, NEVER) for n in ("clean", "flicker", "blur")]
    one_by_one = [backend.values([it])[0] for it in items]
    again = [backend.values([it])[0] for it in items]
    assert one_by_one == again
    batched = backend.values(items)
    for a, b in zip(batched, one_by_one, strict=True):
        assert a.raw == pytest.approx(b.raw, abs=1e-4)
    assert backend.values(items) == batched
    first = backend.judge_batch(items, True, NEVER)
    assert backend.judge_batch(items, True, NEVER) == first


def test_frames_sampled_as_the_checkpoint_was_trained() -> None:
    # 2 fps over a 10 s, 24 fps video: 20 frames evenly spread (VideoAlign's rule)
    idx = sample_indices(240, 24.0, 2.0, None)
    assert len(idx) == 20 and idx[0] == 0 and idx[-1] == 239
    assert len(sample_indices(10, 24.0, 2.0, None)) == 4  # at least 4
    assert len(sample_indices(3, 24.0, 2.0, None)) == 2  # never more than the video (even)
    # counts rounded to even as Python rounds (half to even), as VideoAlign does
    assert len(sample_indices(100, 25.0, None, 9)) == 8
    assert len(sample_indices(100, 25.0, None, 11)) == 12
    assert sample_indices(1, 24.0, 2.0, None) == [0]


def test_full_model_pth_layout_gives_the_same_scores(backend, tmp_path, videos) -> None:
    full = write_tiny_videoalign(tmp_path / "full", full=True)
    other = RewardHeadBackend(VlmOptions(model=full))
    item = backend.prepare(videos["clean"], PROMPT, NEVER)
    assert other.values([item])[0].raw == pytest.approx(backend.values([item])[0].raw, abs=1e-4)


def test_latest_checkpoint_is_used(tiny_va, tmp_path) -> None:
    d = _copy(tiny_va, tmp_path / "va")
    (d / "checkpoint-2").mkdir()  # an older, empty step must not be read
    b = RewardHeadBackend(VlmOptions(model=d))
    assert "checkpoint-4" in b.model.name


def test_prompt_with_a_reward_token_is_refused(backend, videos) -> None:
    from lift.errors import InvalidInput

    with pytest.raises(InvalidInput, match="reward token"):
        backend.prepare(videos["clean"], "a cat <|VQ_reward|>", NEVER)


def _broken(tiny_va: Path, tmp_path: Path, change) -> Path:
    d = _copy(tiny_va, tmp_path / "broken")
    change(d)
    return d


def _edit_config(d: Path, section: str, key: str, value) -> None:
    cfg = json.loads((d / "model_config.json").read_text())
    if value is None:
        cfg[section].pop(key)
    else:
        cfg[section][key] = value
    (d / "model_config.json").write_text(json.dumps(cfg))


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: (d / "checkpoint-4" / "non_lora_state_dict.pth").unlink(), "lacks non_lora"),
        (lambda d: shutil.rmtree(d / "base"), "not a local checkpoint directory"),
        (lambda d: shutil.rmtree(d / "checkpoint-4"), "no checkpoint-N"),
        (lambda d: _edit_config(d, "inference_config", "TA_std", 0), "TA_std must be > 0"),
        (lambda d: _edit_config(d, "data_config", "eval_dim", ["VQ"]), "eval_dim"),
        (lambda d: _edit_config(d, "data_config", "prompt_template_type", "simple"), "simple"),
        (lambda d: _edit_config(d, "data_config", "fps", "fast"), "data_config.fps"),
        (lambda d: _edit_config(d, "data_config", "sample_type", "multi_pts"), "sample_type"),
        (lambda d: (d / "model_config.json").write_text("{"), "not readable JSON"),
        (
            lambda d: (d / "checkpoint-4" / "non_lora_state_dict.pth").write_bytes(
                pickle.dumps({"x": _Evil()})
            ),
            "weights-only",
        ),
        # Any text file (bytes that are no pickle opcode): a bare KeyError escaped.
        (
            lambda d: (d / "checkpoint-4" / "non_lora_state_dict.pth").write_text("hello\n"),
            "non_lora_state_dict.pth does not load as a weights-only state dict",
        ),
        (
            lambda d: (d / "checkpoint-4" / "non_lora_state_dict.pth").write_text(
                "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n"
            ),
            "Git LFS pointer",
        ),
        (
            lambda d: torch.save(
                {"base_model.model.model.embed_tokens.weight": torch.zeros(3, 3)},
                d / "checkpoint-4" / "non_lora_state_dict.pth",
            ),
            "rm_head",
        ),
        (
            lambda d: torch.save(
                {
                    "base_model.model.rm_head.weight": torch.zeros(3, 64),
                    "base_model.model.model.no_such.weight": torch.zeros(2),
                },
                d / "checkpoint-4" / "non_lora_state_dict.pth",
            ),
            "base model has not",
        ),
    ],
)
def test_broken_layouts_are_refused_naming_the_problem(
    tiny_va, tmp_path, change, message, capsys
) -> None:
    d = _broken(tiny_va, tmp_path, change)
    with pytest.raises(ValueError, match=message):
        RewardHeadBackend(VlmOptions(model=d))
    assert "code ran" not in capsys.readouterr().out


def test_settings_that_do_not_apply_are_refused(tiny_va, tiny_lora_dir) -> None:
    with pytest.raises(ValueError, match="adapter"):
        RewardHeadBackend(VlmOptions(model=tiny_va, adapter=tiny_lora_dir))
    with pytest.raises(ValueError, match="templates"):
        RewardHeadBackend(VlmOptions(model=tiny_va, templates="lift-13b"))


def test_compare_batch_is_the_checkpoints_ties_model_on_the_head(backend, videos) -> None:
    a = backend.prepare(videos["clean"], PROMPT, NEVER)
    b = backend.prepare(videos["blur"], PROMPT, NEVER)
    va, vb = backend.values([a, b])
    [ab] = backend.compare_batch([(a, b)], NEVER)
    [ba] = backend.compare_batch([(b, a)], NEVER)
    assert backend.config.ties  # the tiny model_config says loss_type btt
    k = 5.0
    head_order = [
        Dimension.VIDEO_FIDELITY,
        Dimension.MOTION_SMOOTHNESS,
        Dimension.SEMANTIC_CONSISTENCY,
    ]
    assert [d.name for d in ab.dimensions] == list(DIMENSIONS)
    for d in ab.dimensions:
        i = head_order.index(d.name)  # VQ, MQ, TA
        diff = va.raw[i] - vb.raw[i]
        p = d.preference
        assert p.prob_a == pytest.approx(1 / (1 + math.exp(-(diff - math.log(k)))), abs=1e-5)
        assert p.prob_b == pytest.approx(1 / (1 + math.exp(diff + math.log(k))), abs=1e-5)
        assert p.prob_a + p.prob_b + p.prob_tie == pytest.approx(1, abs=1e-5)
    diff = va.overall - vb.overall
    assert ab.overall.prob_a == pytest.approx(1 / (1 + math.exp(-(diff - math.log(k)))), abs=1e-5)
    for x, y in zip(ab.dimensions, ba.dimensions, strict=True):
        assert x.preference.prob_a == pytest.approx(y.preference.prob_b, abs=1e-5)
    [same] = backend.compare_batch([(a, a)], NEVER)
    for d in same.dimensions:
        assert d.preference.prob_a == d.preference.prob_b
        assert d.preference.prob_tie > max(d.preference.prob_a, d.preference.prob_b)


def test_compare_with_a_still_leaves_motion_out_of_overall_too(backend, videos) -> None:
    """One frame has no motion: no MQ preference, and Overall is VQ + TA (as the critique's reward)."""
    from dataclasses import replace

    clean = videos["clean"]
    still = replace(
        clean,
        frames=clean.frames[:1],
        timestamps=clean.timestamps[:1],
        indices=clean.indices[:1],
    )
    a = backend.prepare(still, PROMPT, NEVER)
    b = backend.prepare(videos["blur"], PROMPT, NEVER)
    assert a.still
    va, vb = backend.values([a, b])
    [ab] = backend.compare_batch([(a, b)], NEVER)
    motion = next(d for d in ab.dimensions if d.name == Dimension.MOTION_SMOOTHNESS)
    assert motion.preference.prob_a is None and motion.preference.prob_tie is None
    gap = (va.normalised[0] + va.normalised[2]) - (vb.normalised[0] + vb.normalised[2])
    k = math.log(5.0)
    assert ab.overall.prob_a == pytest.approx(1 / (1 + math.exp(-(gap - k))), abs=1e-5)
    full = va.overall - vb.overall
    assert abs(gap - full) > 1e-3  # MQ mattered, so the test tells the two apart
