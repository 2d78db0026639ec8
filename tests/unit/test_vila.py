"""The vila family (VILA-1.5 / LiFT-Critic) against the reference architecture, by hand.

Every expected value here is computed independently of the code under test: the
projector's 2x2 downsampling by loops, the prompt's token ids with SentencePiece
itself and LLaVA's chunk rule, the logits with transformers' Llama and SigLIP
classes assembled by hand, and a checkpoint written by another builder from a
shrunk copy of the published VILA1.5-3b ``config.json``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Dimension
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm.families.vila import PLACEHOLDER, CheckpointError
from lift.services.critic.backends.vlm.projector import Projector, downsample_2x2
from lift.serving import Deadline
from lift.templates import PRESETS, load_templates
from lift.video import VideoLimits, decode_video

NEVER = Deadline().check
CAPTION = "a dog runs across a green field"

# LLaVA's conv_vicuna_v1, written out here (not read from the preset under test).
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# run_critic_13b.py's three questions (each starts with a space there: caption + question).
QUESTIONS = {
    Dimension.SEMANTIC_CONSISTENCY: " Please identify the semantic consistency issues in this "
    "video, focusing on the alignment between the text and the visual content. Specifically, "
    "point out any discrepancies regarding the subject (e.g., person or animal), quantity, "
    "color, scene description, style, and other relevant aspects.",
    Dimension.VIDEO_FIDELITY: " Please identify the fidelity issues in this video, assessing the "
    "realism of the content, including people, animals, and other objects. Highlight any "
    "problems such as missing limbs, deformed hands or faces, or other unrealistic elements.",
    Dimension.MOTION_SMOOTHNESS: " Please identify the motion issues in this video, focusing on "
    "the continuity and smoothness of actions, as well as their coherence and adherence to the "
    "laws of physics.",
}


# -- 1. the projector ---------------------------------------------------------------------
def _downsample_by_loops(x: torch.Tensor) -> torch.Tensor:
    """VILA's DownSampleBlock read off its reshape/permute, as plain loops.

    The (B, N, C) patches form a side x side grid row by row; odd sides get a zero
    row at the bottom and a zero column at the right. Output token (j, i) for column
    pair j (outer) and row pair i (inner) is the concatenation of the patches
    (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1).
    """
    b, n, c = x.shape
    side = math.isqrt(n)
    even = side + side % 2
    grid = torch.zeros(b, even, even, c, dtype=x.dtype)
    for r in range(side):
        for col in range(side):
            grid[:, r, col] = x[:, r * side + col]
    tokens = []
    for j in range(even // 2):
        for i in range(even // 2):
            cells = [(2 * i, 2 * j), (2 * i, 2 * j + 1), (2 * i + 1, 2 * j), (2 * i + 1, 2 * j + 1)]
            tokens.append(torch.cat([grid[:, r, col] for r, col in cells], dim=-1))
    return torch.stack(tokens, dim=1)


@pytest.mark.parametrize("side", [4, 5, 7])
def test_downsample_matches_the_reference_block_computed_by_loops(side: int) -> None:
    torch.manual_seed(side)
    x = torch.randn(2, side * side, 3)
    out = downsample_2x2(x)
    half = (side + 1) // 2
    assert out.shape == (2, half * half, 12)
    assert torch.equal(out, _downsample_by_loops(x))
    if side % 2:  # the padded cells are zeros: the last token's lower-right patches
        assert torch.equal(out[:, -1, 3:], torch.zeros(2, 9))


def test_downsample_projector_is_layernorm_linear_gelu_linear_after_the_block() -> None:
    torch.manual_seed(0)
    proj = Projector("mlp_downsample", 6, 10)
    assert sorted(proj.state_dict()) == [
        "layers.1.bias",
        "layers.1.weight",
        "layers.2.bias",
        "layers.2.weight",
        "layers.4.bias",
        "layers.4.weight",
    ]
    with torch.no_grad():
        for p in proj.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(3, 49, 6)
    s = proj.state_dict()
    h = torch.nn.functional.layer_norm(
        _downsample_by_loops(x), (24,), s["layers.1.weight"], s["layers.1.bias"]
    )
    h = torch.nn.functional.gelu(h @ s["layers.2.weight"].T + s["layers.2.bias"])
    expected = h @ s["layers.4.weight"].T + s["layers.4.bias"]
    torch.testing.assert_close(proj(x), expected, atol=1e-5, rtol=1e-5)
    assert proj.tokens(49) == 16 and proj.tokens(729) == 196  # VILA1.5's 27x27 -> 14x14


def test_other_projector_types_have_the_published_parameter_names() -> None:
    linear = Projector("linear", 6, 10)
    assert sorted(linear.state_dict()) == ["layers.bias", "layers.weight"]
    assert linear.state_dict()["layers.weight"].shape == (10, 6)
    mlp = Projector("mlp2x_gelu", 6, 10)
    assert sorted(mlp.state_dict()) == [
        "layers.0.bias",
        "layers.0.weight",
        "layers.2.bias",
        "layers.2.weight",
    ]
    x = torch.randn(2, 7, 6)
    s = mlp.state_dict()
    hidden = torch.nn.functional.gelu(x @ s["layers.0.weight"].T + s["layers.0.bias"])
    torch.testing.assert_close(mlp(x), hidden @ s["layers.2.weight"].T + s["layers.2.bias"])
    assert mlp(x).shape == (2, 7, 10) and linear(x).shape == (2, 7, 10)
    assert mlp.tokens(24) == 24 and linear.tokens(729) == 729
    ident = Projector("identity", 8, 8)
    assert dict(ident.state_dict()) == {}
    y = torch.randn(1, 3, 8)
    assert torch.equal(ident(y), y)
    with pytest.raises(ValueError, match="identity"):
        Projector("identity", 6, 10)


def test_unknown_projector_type_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(ValueError) as err:
        Projector("mlp_resampler", 6, 10)
    msg = str(err.value)
    assert "mlp_resampler" in msg
    for kind in ("identity", "linear", "mlp_downsample", "gelu"):
        assert kind in msg
    with pytest.raises(ValueError, match="square"):
        Projector("mlp_downsample", 6, 10).tokens(728)


# -- shared fixtures -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def vila(tiny_vila_dir: Path) -> VlmBackend:
    return VlmBackend(VlmOptions(model=tiny_vila_dir, templates="lift-13b"))


@pytest.fixture(scope="module")
def videos(mp4s: dict[str, bytes]):
    return {
        "clean8": decode_video(mp4s["clean"], VideoLimits(), max_samples=8, sampling="index"),
        "flicker5": decode_video(mp4s["flicker"], VideoLimits(), max_samples=5, sampling="index"),
        "judder3": decode_video(mp4s["judder"], VideoLimits(), max_samples=3, sampling="index"),
    }


def _sp(checkpoint: Path) -> Any:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(checkpoint / "llm" / "tokenizer.model"))


def _reference_ids(sp: Any, prompt: str) -> list[int]:
    """LLaVA's tokenizer_image_token with SentencePiece itself (the slow Llama tokenizer)."""
    chunks = [[sp.bos_id(), *sp.encode(chunk)] for chunk in prompt.split("<image>")]
    ids = [sp.bos_id()]
    for k, chunk in enumerate(chunks):
        if k:
            ids.append(PLACEHOLDER)
        ids.extend(chunk[1:])
    return ids


def _vicuna(frames: int, dim: Dimension) -> str:
    """vicuna_v1's prompt: system, " USER: ", the message, " ASSISTANT:" (LLaVA's sep_style TWO)."""
    message = "<image>\n" * frames + CAPTION + QUESTIONS[dim]
    return f"{VICUNA_SYSTEM} USER: {message} ASSISTANT:"


# -- 2. where the image features land ------------------------------------------------------
def test_rows_are_llava_tokenizer_image_token_of_the_vicuna_prompt(
    vila: VlmBackend, tiny_vila_dir: Path, videos
) -> None:
    sp = _sp(tiny_vila_dir)
    per_frame = vila.family.tokens_per_frame
    assert per_frame == 9  # a 5x5 patch grid, padded to 6x6, 2x2 -> 3x3
    for name in ("clean8", "judder3"):
        video = videos[name]
        item = vila.prepare(video, CAPTION, NEVER)
        assert item.dims == DIMENSIONS
        for dim, row in zip(item.dims, item.rows, strict=True):
            with_images = _reference_ids(sp, _vicuna(video.num_sampled, dim))
            expected: list[int] = []
            for t in with_images:
                expected.extend([PLACEHOLDER] * per_frame if t == PLACEHOLDER else [t])
            assert list(row) == expected
            # and its shape, spelled out: BOS once, system text, then per frame the
            # image tokens followed by the "\n" chunk, then caption + question + ASSISTANT:
            assert row[0] == sp.bos_id() and sp.bos_id() not in row[1:]
            head = sp.encode(VICUNA_SYSTEM + " USER: ")
            assert list(row[1 : 1 + len(head)]) == head
            newline = sp.encode("\n")
            at = 1 + len(head)
            for _ in range(video.num_sampled):
                assert list(row[at : at + per_frame]) == [PLACEHOLDER] * per_frame
                at += per_frame
                if _ < video.num_sampled - 1:
                    assert list(row[at : at + len(newline)]) == newline
                    at += len(newline)
            tail = sp.encode("\n" + CAPTION + QUESTIONS[dim] + " ASSISTANT:")
            assert list(row[at:]) == tail
            assert sp.decode(tail).endswith(" ASSISTANT:")


# -- 3. logits against a hand assembly -----------------------------------------------------
def _pixels(frames: np.ndarray, size: int) -> torch.Tensor:
    out = []
    for f in frames:
        image = Image.fromarray(f).resize((size, size))  # PIL's default filter, as LLaVA
        x = np.asarray(image, dtype=np.float32) / 255.0
        out.append(((x - 0.5) / 0.5).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


class _HandModel:
    """The tiny VILA assembled from transformers' classes and the part folders by hand."""

    def __init__(self, checkpoint: Path) -> None:
        from transformers import LlamaForCausalLM, SiglipVisionModel

        self.llm = LlamaForCausalLM.from_pretrained(str(checkpoint / "llm"), dtype=torch.float32)
        self.tower = SiglipVisionModel.from_pretrained(
            str(checkpoint / "vision_tower"), dtype=torch.float32
        )
        root = json.loads((checkpoint / "config.json").read_text())
        self.projector = Projector(
            root["mm_projector_cfg"]["mm_projector_type"],
            root["mm_hidden_size"],
            root["hidden_size"],
        )
        self.projector.load_state_dict(
            load_file(str(checkpoint / "mm_projector" / "model.safetensors"))
        )
        self.size = root["vision_tower_cfg"]["image_size"]
        self.llm.eval()
        self.tower.eval()

    @torch.no_grad()
    def features(self, frames: np.ndarray) -> torch.Tensor:
        out = self.tower(pixel_values=_pixels(frames, self.size), output_hidden_states=True)
        return self.projector(out.hidden_states[-2])  # cls_patch: every position

    @torch.no_grad()
    def embeds(self, ids: list[int], features: torch.Tensor) -> torch.Tensor:
        table = self.llm.get_input_embeddings()
        parts, text, frame = [], [], 0
        for t in [*ids, None]:
            if t == PLACEHOLDER or t is None:
                if text:
                    parts.append(table(torch.tensor(text)))
                    text = []
                if t == PLACEHOLDER:
                    parts.append(features[frame])
                    frame += 1
            else:
                text.append(t)
        assert frame == features.shape[0]
        return torch.cat(parts)[None]

    @torch.no_grad()
    def next_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.llm(inputs_embeds=embeds).logits[0, -1]


class _Recording:
    """Wraps a family and keeps the logits of every decode call."""

    def __init__(self, family: Any) -> None:
        self._family = family
        self.logits: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._family, name)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        logits, cache = self._family.decode(*args, **kwargs)
        self.logits.append(logits.detach().clone())
        return logits, cache


@pytest.fixture(scope="module")
def hand(tiny_vila_dir: Path) -> _HandModel:
    return _HandModel(tiny_vila_dir)


def test_logits_equal_a_hand_assembly_of_the_same_modules(
    vila: VlmBackend, hand: _HandModel, tiny_vila_dir: Path, videos
) -> None:
    sp = _sp(tiny_vila_dir)
    video = videos["clean8"]
    labels = [sp.encode("ASSISTANT: " + w)[-1] for w in ("Good", "Normal", "Bad")]
    assert [sp.id_to_piece(t) for t in labels] == ["▁Good", "▁Normal", "▁Bad"]
    item = vila.prepare(video, CAPTION, NEVER)
    recording = _Recording(vila.scorer.family)
    vila.scorer.family = recording
    try:
        answers = vila.scorer.run([item], False, NEVER)[0]
    finally:
        vila.scorer.family = recording._family
    ours = recording.logits[0]  # the answer position of the three questions, left-padded
    features = hand.features(video.frames)
    for b, (dim, answer) in enumerate(zip(item.dims, answers, strict=True)):
        ids = _reference_ids(sp, _vicuna(video.num_sampled, dim))
        expected = hand.next_logits(hand.embeds(ids, features))
        torch.testing.assert_close(ours[b].float(), expected, atol=1e-4, rtol=1e-4)
        restricted = torch.softmax(expected[labels].double(), dim=-1).numpy()
        p = answer.probabilities
        np.testing.assert_allclose([p.good, p.normal, p.bad], restricted, atol=2e-6)
        assert answer.label == ASSESSED_LABELS[int(np.argmax(restricted))]


# -- 4. a checkpoint written by a different builder ----------------------------------------
def _published_llm_cfg() -> dict[str, Any]:
    """VILA1.5-3b's llm_cfg (transformers 4.36 era, every key), sizes shrunk."""
    return {
        "_name_or_path": "./llm",
        "add_cross_attention": False,
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bad_words_ids": None,
        "begin_suppress_tokens": None,
        "bos_token_id": 1,
        "chunk_size_feed_forward": 0,
        "cross_attention_hidden_size": None,
        "decoder_start_token_id": None,
        "diversity_penalty": 0.0,
        "do_sample": False,
        "early_stopping": False,
        "encoder_no_repeat_ngram_size": 0,
        "eos_token_id": 2,
        "exponential_decay_length_penalty": None,
        "finetuning_task": None,
        "forced_bos_token_id": None,
        "forced_eos_token_id": None,
        "hidden_act": "silu",
        "hidden_size": 48,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "initializer_range": 0.02,
        "intermediate_size": 96,
        "is_decoder": False,
        "is_encoder_decoder": False,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "length_penalty": 1.0,
        "max_length": 20,
        "max_position_embeddings": 4096,
        "min_length": 0,
        "model_max_length": 4096,
        "model_type": "llama",
        "no_repeat_ngram_size": 0,
        "num_attention_heads": 4,
        "num_beam_groups": 1,
        "num_beams": 1,
        "num_hidden_layers": 2,
        "num_key_value_heads": 4,
        "num_return_sequences": 1,
        "output_attentions": False,
        "output_hidden_states": False,
        "output_scores": False,
        "pad_token_id": 0,
        "prefix": None,
        "pretraining_tp": 1,
        "problem_type": None,
        "pruned_heads": {},
        "remove_invalid_values": False,
        "repetition_penalty": 1.0,
        "return_dict": True,
        "return_dict_in_generate": False,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "sep_token_id": None,
        "suppress_tokens": None,
        "task_specific_params": None,
        "temperature": 1.0,
        "tf_legacy_loss": False,
        "tie_encoder_decoder": False,
        "tie_word_embeddings": False,
        "tokenizer_class": None,
        "tokenizer_model_max_length": 4096,
        "tokenizer_padding_side": "right",
        "top_k": 50,
        "top_p": 1.0,
        "torch_dtype": "bfloat16",
        "torchscript": False,
        "typical_p": 1.0,
        "use_bfloat16": False,
        "use_cache": True,
        "vocab_size": 0,  # set from the copied tokenizer
    }


def _published_tower_cfg() -> dict[str, Any]:
    """VILA1.5-3b's vision_tower_cfg (siglip-so400m-patch14-384), sizes shrunk (grid odd)."""
    return {
        "_name_or_path": "./vision_tower",
        "architectures": ["SiglipVisionModel"],
        "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 24,
        "image_size": 42,
        "intermediate_size": 40,
        "layer_norm_eps": 1e-06,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 2,
        "num_channels": 3,
        "num_hidden_layers": 3,
        "patch_size": 14,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.2",
    }


def _published_root(llm: dict[str, Any], tower: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "_name_or_path": "./vlm",
        "architectures": ["LlavaLlamaModel"],
        "drop_path_rate": 0.0,
        "hidden_size": llm["hidden_size"],
        "image_aspect_ratio": "resize",
        "interpolate_mode": "linear",
        "llm_cfg": llm,
        "mm_hidden_size": tower["hidden_size"],
        "mm_projector_cfg": {
            "_name_or_path": "./mm_projector",
            "architectures": ["MultimodalProjector"],
            "mm_projector_type": kind,
            "model_type": "v2l_projector",
            "torch_dtype": "bfloat16",
        },
        "mm_projector_lr": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "cls_patch",
        "mm_vision_select_layer": -2,
        "model_dtype": "torch.bfloat16",
        "model_type": "llava_llama",
        "num_video_frames": 8,
        "resume_path": "./vlm",
        "s2": False,
        "s2_max_split_size": 336,
        "s2_scales": "336,672,1008",
        "soft_ce_std": 1.0,
        "transformers_version": "4.36.2",
        "tune_language_model": True,
        "tune_mm_projector": True,
        "tune_vision_tower": True,
        "vision_resolution": -1,
        "vision_tower_cfg": tower,
    }


def _projector_state(kind: str, mm: int, hidden: int, gen: torch.Generator) -> dict[str, Any]:
    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.3

    if kind == "mlp_downsample":
        return {
            "layers.1.weight": 1 + r(4 * mm),
            "layers.1.bias": r(4 * mm),
            "layers.2.weight": r(hidden, 4 * mm),
            "layers.2.bias": r(hidden),
            "layers.4.weight": r(hidden, hidden),
            "layers.4.bias": r(hidden),
        }
    if kind == "linear":
        return {"layers.weight": r(hidden, mm), "layers.bias": r(hidden)}
    assert kind == "mlp2x_gelu"
    return {
        "layers.0.weight": r(hidden, mm),
        "layers.0.bias": r(hidden),
        "layers.2.weight": r(hidden, hidden),
        "layers.2.bias": r(hidden),
    }


def _write_foreign(
    out: Path, tokenizer_from: Path, kind: str = "mlp_downsample", **root_overrides: Any
) -> Path:
    """A VILA1.5-3b-shaped checkpoint built here, part by part, with transformers directly."""
    from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

    llm_cfg, tower_cfg = _published_llm_cfg(), _published_tower_cfg()
    llm_cfg["vocab_size"] = _sp(tokenizer_from).vocab_size()
    root = _published_root(llm_cfg, tower_cfg, kind)
    root.update(root_overrides)
    for part in ("llm", "vision_tower", "mm_projector"):
        (out / part).mkdir(parents=True)
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tokenizer_from / "llm" / name, out / "llm" / name)
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    keep = {k: v for k, v in llm_cfg.items() if k not in ("_name_or_path", "architectures")}
    llm = LlamaForCausalLM(LlamaConfig(**keep))
    with torch.no_grad():
        for p in llm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    save_file(
        {k: v.contiguous().to(torch.bfloat16) for k, v in llm.state_dict().items()},
        str(out / "llm" / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (out / "llm" / "config.json").write_text(json.dumps(llm_cfg, indent=2))
    tower_keep = {k: v for k, v in tower_cfg.items() if not k.startswith(("_", "arch", "trans"))}
    tower = SiglipVisionModel(SiglipVisionConfig(**tower_keep))
    with torch.no_grad():
        for p in tower.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    state = {
        (k if k.startswith("vision_model.") else f"vision_model.{k}"): v.contiguous()
        for k, v in tower.state_dict().items()
    }
    save_file(state, str(out / "vision_tower" / "model.safetensors"), metadata={"format": "pt"})
    (out / "vision_tower" / "config.json").write_text(json.dumps(tower_cfg, indent=2))
    preprocessor = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "SiglipProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": tower_cfg["image_size"], "width": tower_cfg["image_size"]},
    }
    (out / "vision_tower" / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    proj = _projector_state(kind, tower_cfg["hidden_size"], llm_cfg["hidden_size"], gen)
    save_file(proj, str(out / "mm_projector" / "model.safetensors"), metadata={"format": "pt"})
    (out / "mm_projector" / "config.json").write_text(json.dumps(root["mm_projector_cfg"]))
    (out / "config.json").write_text(json.dumps(root, indent=2))
    return out


def _judge_all(backend: VlmBackend, video) -> Any:
    return backend.judge_batch([backend.prepare(video, CAPTION, NEVER)], True, NEVER)[0]


def _assert_judged(judgement: Any) -> None:
    assert [d.name for d in judgement.dimensions] == list(DIMENSIONS)
    for d in judgement.dimensions:
        p = d.probabilities
        assert p is not None and abs(p.good + p.normal + p.bad - 1) < 1e-6
        assert d.label == ASSESSED_LABELS[int(np.argmax([p.good, p.normal, p.bad]))]
        assert d.reasons and d.reasons[0].strip()


def test_a_published_vila_config_built_elsewhere_loads_and_judges(
    tmp_path: Path, tiny_vila_dir: Path, videos
) -> None:
    root = _write_foreign(tmp_path / "vila3b", tiny_vila_dir)
    backend = VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    assert backend.family.tokens_per_frame == 4  # 3x3 patches -> 4x4 padded -> 2x2
    _assert_judged(_judge_all(backend, videos["clean8"]))
    # the same probabilities as the hand assembly of this checkpoint's parts
    hand = _HandModel(root)
    sp = _sp(root)
    labels = [sp.encode("ASSISTANT: " + w)[-1] for w in ("Good", "Normal", "Bad")]
    video = videos["judder3"]
    item = backend.prepare(video, CAPTION, NEVER)
    answers = backend.scorer.run([item], False, NEVER)[0]
    features = hand.features(video.frames)
    for dim, answer in zip(item.dims, answers, strict=True):
        logits = hand.next_logits(hand.embeds(_reference_ids(sp, _vicuna(3, dim)), features))
        expected = torch.softmax(logits[labels].double(), dim=-1).numpy()
        p = answer.probabilities
        np.testing.assert_allclose([p.good, p.normal, p.bad], expected, atol=1e-4)


def test_without_part_configs_the_root_cfgs_are_used(
    tmp_path: Path, tiny_vila_dir: Path, videos
) -> None:
    root = _write_foreign(tmp_path / "vila3b", tiny_vila_dir)
    for part in ("llm", "vision_tower", "mm_projector"):
        (root / part / "config.json").unlink()
    backend = VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    assert backend.family.tokens_per_frame == 4
    _assert_judged(_judge_all(backend, videos["judder3"]))


@pytest.mark.parametrize("kind", ["linear", "mlp2x_gelu"])
def test_linear_and_mlp_projectors_load_and_judge(
    tmp_path: Path, tiny_vila_dir: Path, videos, kind: str
) -> None:
    root = _write_foreign(tmp_path / kind, tiny_vila_dir, kind=kind)
    backend = VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    assert backend.family.tokens_per_frame == 9  # every patch of the 3x3 grid
    _assert_judged(_judge_all(backend, videos["judder3"]))


def test_patch_feature_drops_the_first_position(
    tmp_path: Path, tiny_vila_dir: Path, videos
) -> None:
    root = _write_foreign(
        tmp_path / "patch", tiny_vila_dir, kind="linear", mm_vision_select_feature="patch"
    )
    backend = VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    assert backend.family.tokens_per_frame == 8
    video = videos["judder3"]
    _assert_judged(_judge_all(backend, video))
    hand = _HandModel(root)
    with torch.no_grad():
        out = hand.tower(pixel_values=_pixels(video.frames, 42), output_hidden_states=True)
        expected = hand.projector(out.hidden_states[-2][:, 1:])
        ours = backend.family.frame_features(
            backend.scorer.model, torch.from_numpy(backend.family.prepare(video.frames, 0.1).pixels)
        )
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


def test_patch_feature_with_mlp_downsample_is_refused_at_start(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    root = _write_foreign(tmp_path / "patch", tiny_vila_dir, mm_vision_select_feature="patch")
    with pytest.raises(CheckpointError, match="square") as err:
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    assert "8" in str(err.value)


def test_pad_aspect_mode_centres_frames_on_the_mean_colour(
    tmp_path: Path, tiny_vila_dir: Path, videos
) -> None:
    root = _write_foreign(tmp_path / "pad", tiny_vila_dir, image_aspect_ratio="pad")
    backend = VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    video = videos["judder3"]
    _assert_judged(_judge_all(backend, video))
    frame = video.frames[0]
    h, w = frame.shape[:2]
    side = max(h, w)
    square = np.full((side, side, 3), 127, np.uint8)  # int(0.5 * 255)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = frame
    image = Image.fromarray(square).resize((42, 42), resample=Image.Resampling.BICUBIC)
    expected = (np.asarray(image, np.float32) / 255 - 0.5) / 0.5
    ours = backend.family.prepare(video.frames[:1], 0.1).pixels[0]
    np.testing.assert_allclose(ours, expected.transpose(2, 0, 1), atol=1e-5)


# -- 5. refusals at start-up ---------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **changes: Any) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _refused(model: Path, adapter: Path | None = None) -> str:
    with pytest.raises(ValueError) as err:  # CheckpointError is a ValueError
        VlmBackend(VlmOptions(model=model, adapter=adapter, templates="lift-13b"))
    return str(err.value)


def test_unknown_projector_type_is_refused_naming_it(tmp_path: Path, tiny_vila_dir: Path) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    _edit_json(root / "mm_projector" / "config.json", mm_projector_type="mlp_resampler")
    msg = _refused(root)
    assert "mlp_resampler" in msg and "mlp_downsample" in msg


@pytest.mark.parametrize("part", ["llm", "vision_tower", "mm_projector"])
def test_a_missing_part_folder_is_refused_naming_it(
    tmp_path: Path, tiny_vila_dir: Path, part: str
) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    shutil.rmtree(root / part)
    msg = _refused(root)
    assert f"{part}/" in msg and "missing" in msg


def test_hidden_sizes_that_disagree_are_refused(tmp_path: Path, tiny_vila_dir: Path) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    _edit_json(root / "config.json", hidden_size=128)
    msg = _refused(root)
    assert "hidden_size" in msg and "128" in msg and "64" in msg


# -- the 40B layout: InternViT-6B tower from our own module --------------------------------------
@pytest.fixture(scope="module")
def vila40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lift.services.critic.backends.vlm.tiny_vila import write_tiny_vila

    return write_tiny_vila(tmp_path_factory.mktemp("vila40"), tower="intern")


def test_an_internvit_tower_loads_without_its_remote_code(vila40: Path, videos) -> None:
    """VILA1.5-40B's tower: the config's auto_map points at checkpoint code we never run."""
    from lift.services.critic.backends.vlm.intern_vit import InternConfig, InternVisionModel

    raw = json.loads((vila40 / "vision_tower" / "config.json").read_text())
    assert raw["model_type"] == "intern_vit_6b" and "auto_map" in raw
    backend = VlmBackend(VlmOptions(model=vila40, templates="lift-40b"))
    assert backend.family.tokens_per_frame == 4  # 4x4 patches, class token dropped, 2x2 merged
    item = backend.prepare(videos["clean8"], "a ball", NEVER)
    # the features: an independently loaded full tower, layer -2, class token dropped, projector
    tower = InternVisionModel(InternConfig.from_dict(raw)).eval()
    tower.load_state_dict(load_file(str(vila40 / "vision_tower" / "model.safetensors")))
    projector = backend.scorer.model.mm_projector
    with torch.inference_mode():
        pixels = torch.from_numpy(item.vision.pixels)
        hidden = tower(pixel_values=pixels).hidden_states[-2][:, 1:]
        expected = projector(hidden).reshape(-1, projector.layers[-1].out_features)
        got = backend.family.encode_videos(backend.scorer.model, [item.vision])[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # ImageNet normalisation at the tower's size, as VILA's InternViT preprocessor
    frame = np.asarray(
        Image.fromarray(videos["clean8"].frames[0]).resize((56, 56)), dtype=np.float32
    )
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(
        item.vision.pixels[0], ((frame / 255 - mean) / std).transpose(2, 0, 1), atol=1e-5
    )
    judged = backend.judge_batch([item], True, NEVER)[0]
    assert all(d.reasons and d.probabilities for d in judged.dimensions)


def test_internvit_with_its_class_token_kept_is_not_a_square_grid(
    tmp_path: Path, vila40: Path
) -> None:
    root = _copy(vila40, tmp_path / "v")
    _edit_json(root / "config.json", mm_vision_select_feature="cls_patch")
    msg = _refused(root)
    assert "square" in msg and "17" in msg


def test_internvit_weights_that_do_not_fit_are_refused(tmp_path: Path, vila40: Path) -> None:
    root = _copy(vila40, tmp_path / "v")
    _edit_json(root / "vision_tower" / "config.json", num_hidden_layers=4)
    msg = _refused(root)
    assert "vision_tower/" in msg and "missing" in msg and "encoder.layers.3" in msg


@pytest.fixture()
def lora(tmp_path: Path, tiny_vila_lora_dir: Path) -> Path:
    return _copy(tiny_vila_lora_dir, tmp_path / "lora")


def test_an_adapter_trained_on_other_sizes_is_refused(tiny_vila_dir: Path, lora: Path) -> None:
    raw = json.loads((lora / "config.json").read_text())
    raw["llm_cfg"]["hidden_size"] = 128
    (lora / "config.json").write_text(json.dumps(raw))
    msg = _refused(tiny_vila_dir, lora)
    assert "other sizes" in msg and "hidden_size" in msg and "128" in msg


def _edit_adapter(lora: Path, change: Any) -> None:
    path = lora / "adapter_model.safetensors"
    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path), metadata={"format": "pt"})


def test_adapter_weights_matching_nothing_are_refused(tiny_vila_dir: Path, lora: Path) -> None:
    key = "base_model.model.llm.model.layers.0.self_attn.rotary.lora_A.weight"
    _edit_adapter(lora, lambda w: w.update({key: torch.zeros(4, 64)}))
    msg = _refused(tiny_vila_dir, lora)
    assert "match no LoRA layer" in msg and "rotary" in msg


def test_adapter_weight_shapes_that_differ_are_refused(tiny_vila_dir: Path, lora: Path) -> None:
    key = "base_model.model.llm.model.layers.1.mlp.up_proj.lora_A.weight"
    _edit_adapter(lora, lambda w: w.update({key: torch.zeros(4, 65)}))
    msg = _refused(tiny_vila_dir, lora)
    assert "shape" in msg and "up_proj" in msg and "65" in msg


def test_target_modules_without_weights_are_refused(tiny_vila_dir: Path, lora: Path) -> None:
    def drop(w: dict[str, torch.Tensor]) -> None:
        for k in [k for k in w if ".layers.1.self_attn.v_proj." in k]:
            del w[k]

    _edit_adapter(lora, drop)
    msg = _refused(tiny_vila_dir, lora)
    assert "does not hold" in msg and "v_proj" in msg


class _RunsCode:
    """Unpickling this runs ``exec`` (it writes a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_non_lora_pickle_that_would_run_code_is_refused_unrun(
    tmp_path: Path, tiny_vila_dir: Path, lora: Path
) -> None:
    marker = tmp_path / "ran.txt"
    payload = {"base_model.model.mm_projector.layers.2.bias": _RunsCode(marker)}
    torch.save(payload, lora / "non_lora_trainables.bin")
    msg = _refused(tiny_vila_dir, lora)
    assert "non_lora_trainables.bin" in msg and "refused" in msg
    assert not marker.exists()
    # the file really would have run code under a plain unpickler
    torch.load(lora / "non_lora_trainables.bin", weights_only=False)
    assert marker.read_text() == "ran"


def test_non_lora_tensors_matching_nothing_are_refused(tiny_vila_dir: Path, lora: Path) -> None:
    torch.save(
        {"base_model.model.mm_projector.layers.9.weight": torch.zeros(3)},
        lora / "non_lora_trainables.bin",
    )
    msg = _refused(tiny_vila_dir, lora)
    assert "match no part" in msg and "layers.9" in msg
    torch.save(
        {"base_model.model.mm_projector.layers.2.bias": torch.zeros(3)},
        lora / "non_lora_trainables.bin",
    )
    assert "shapes differ" in _refused(tiny_vila_dir, lora)


def test_settings_refuse_a_broken_checkpoint_at_start(tmp_path: Path, tiny_vila_dir: Path) -> None:
    from tests.service.conftest import start_critic

    root = _copy(tiny_vila_dir, tmp_path / "v")
    shutil.rmtree(root / "mm_projector")
    with pytest.raises(ValueError, match="mm_projector/ folder is missing"):
        start_critic(backend="vlm", model=root, templates="lift-13b")


# -- 6. the guarantees on the tiny VILA ----------------------------------------------------
def test_three_dimensions_with_probabilities_labels_and_parsable_reasons(vila, videos) -> None:
    templates = load_templates("lift-13b")
    for video in videos.values():
        judgement = _judge_all(vila, video)
        _assert_judged(judgement)
        for d in judgement.dimensions:
            text = f"{templates.labels[d.label]}. {d.reasons[0]}"
            assert templates.parse_answer(text) == (d.label, d.reasons[0])
        scored = vila.judge_batch([vila.prepare(video, CAPTION, NEVER)], False, NEVER)[0]
        assert [d.probabilities for d in scored.dimensions] == [
            d.probabilities for d in judgement.dimensions
        ]
        assert [d.label for d in scored.dimensions] == [d.label for d in judgement.dimensions]
        assert all(d.reasons == () for d in scored.dimensions)
        assert _judge_all(vila, video) == judgement  # the same Judgement on a repeat


def test_the_forced_answer_reads_label_then_reason(vila, videos) -> None:
    item = vila.prepare(videos["flicker5"], CAPTION, NEVER)
    forced = [ASSESSED_LABELS[k % 3] for k in range(len(item.rows))]
    answers = vila.scorer.run([item], True, NEVER, force=forced)[0]
    templates = vila.scorer.templates
    for label, answer in zip(forced, answers, strict=True):
        assert answer.text is not None and answer.reason
        assert answer.text.startswith(templates.labels[label] + ".")
        assert templates.parse_answer(answer.text) == (label, answer.reason)


def test_micro_batching_equals_sequential(vila, videos) -> None:
    items = [vila.prepare(v, CAPTION, NEVER) for v in videos.values()]
    assert len({it.vision.grid[0] for it in items}) == 3  # 8, 5 and 3 frames
    together = vila.judge_batch(items, True, NEVER)
    for item, joint in zip(items, together, strict=True):
        alone = vila.judge_batch([item], True, NEVER)[0]
        for a, b in zip(joint.dimensions, alone.dimensions, strict=True):
            assert a.label == b.label and a.reasons == b.reasons
            pa, pb = a.probabilities, b.probabilities
            np.testing.assert_allclose(
                [pa.good, pa.normal, pa.bad], [pb.good, pb.normal, pb.bad], atol=1e-5
            )


def test_frames_of_other_sizes_batch_with_the_same_answers(vila, mp4s) -> None:
    from lift.video.encode import encode_video

    rng = np.random.default_rng(3)
    small = encode_video(rng.integers(0, 255, (6, 48, 80, 3), dtype=np.uint8), 8, "mp4")
    big = decode_video(mp4s["clean"], VideoLimits(), max_samples=8, sampling="index")
    odd = decode_video(small, VideoLimits(), max_samples=8, sampling="index")
    assert big.frames.shape[1:] != odd.frames.shape[1:]
    items = [vila.prepare(v, CAPTION, NEVER) for v in (odd, big)]
    together = vila.judge_batch(items, True, NEVER)
    for item, joint in zip(items, together, strict=True):
        alone = vila.judge_batch([item], True, NEVER)[0]
        assert [d.reasons for d in joint.dimensions] == [d.reasons for d in alone.dimensions]


def test_the_adapter_changes_outputs_and_the_model_version(
    vila, tiny_vila_dir: Path, tiny_vila_lora_dir: Path, videos
) -> None:
    tuned = VlmBackend(
        VlmOptions(model=tiny_vila_dir, adapter=tiny_vila_lora_dir, templates="lift-13b")
    )
    assert tuned.model.version != vila.model.version
    assert tuned.model.name.endswith("+" + tiny_vila_lora_dir.name)
    base, lora = _judge_all(vila, videos["clean8"]), _judge_all(tuned, videos["clean8"])
    _assert_judged(lora)
    assert [d.probabilities for d in base.dimensions] != [d.probabilities for d in lora.dimensions]
    assert [d.reasons for d in base.dimensions] != [d.reasons for d in lora.dimensions]
    # the base is untouched by loading the adapter elsewhere
    assert _judge_all(vila, videos["clean8"]) == base


def test_the_composite_backend_works_with_a_vila_vlm(vila, mp4s) -> None:
    from lift.services.critic.backends.composite import CompositeBackend
    from lift.services.critic.backends.signal import SignalBackend

    composite = CompositeBackend(vila, SignalBackend(), list(Dimension))
    video = decode_video(mp4s["flicker"], VideoLimits(), max_samples=8, sampling="index")
    merged = composite.judge_batch([composite.prepare(video, CAPTION, NEVER)], True, NEVER)[0]
    alone = _judge_all(vila, video)
    for m, a in zip(merged.dimensions, alone.dimensions, strict=True):
        assert m.label == a.label and m.probabilities == a.probabilities
        assert m.reasons == a.reasons
    assert composite.model.backend == "composite"


def test_index_sampling_picks_the_reference_frames_of_a_real_clip(vila) -> None:
    import av

    assert vila.frame_sampling == "index"
    clips = sorted(Path("/work/shared/data/real").glob("*.mp4"))
    if not clips:
        pytest.skip("no real clips in /work/shared/data/real")
    data = clips[0].read_bytes()
    with av.open(str(clips[0])) as container:
        every = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    video = decode_video(data, VideoLimits(), max_samples=vila.max_frames, sampling="index")
    expected = np.floor(np.linspace(0, len(every) - 1, 8)).astype(int)
    assert video.total_frames == len(every)
    assert video.indices.tolist() == expected.tolist()
    for frame, index in zip(video.frames, expected, strict=True):
        assert np.array_equal(frame, every[index])


def _shared_first_token_labels(sp: Any) -> dict[str, str] | None:
    """Three label words, two of them sharing their first SentencePiece token."""
    for stem in ("Good", "Bad", "Normal"):
        for a, b in (("ish", "ly"), ("er", "est"), ("x", "z")):
            one, two = sp.encode("ASSISTANT: " + stem + a), sp.encode("ASSISTANT: " + stem + b)
            base = sp.encode("ASSISTANT:")
            one, two = one[len(base) :], two[len(base) :]
            if len(one) > 1 and len(two) > 1 and one[0] == two[0] and one[1] != two[1]:
                other = "Bad" if stem != "Bad" else "Good"
                return {"good": stem + a, "normal": stem + b, "bad": other}
    return None


def test_label_words_sharing_a_first_token_are_scored_token_by_token(
    tmp_path: Path, tiny_vila_dir: Path, hand: _HandModel, videos
) -> None:
    sp = _sp(tiny_vila_dir)
    words = _shared_first_token_labels(sp)
    assert words is not None
    text = (PRESETS / "lift-13b.toml").read_text()
    for key, word in (("good", "Good"), ("normal", "Normal"), ("bad", "Bad")):
        text = text.replace(f'{key} = "{word}"', f'{key} = "{words[key]}"', 1)
    path = tmp_path / "shared.toml"
    path.write_text(text)
    backend = VlmBackend(VlmOptions(model=tiny_vila_dir, templates=str(path)))
    video = videos["judder3"]
    item = backend.prepare(video, CAPTION, NEVER)
    answers = backend.scorer.run([item], False, NEVER)[0]
    base = sp.encode("ASSISTANT:")
    seqs = [sp.encode("ASSISTANT: " + words[k])[len(base) :] for k in ("good", "normal", "bad")]
    assert seqs[0][0] == seqs[1][0] != seqs[2][0]
    features = hand.features(video.frames)
    table = hand.llm.get_input_embeddings()
    for dim, answer in zip(item.dims, answers, strict=True):
        embeds = hand.embeds(_reference_ids(sp, _vicuna(3, dim)), features)
        first = hand.next_logits(embeds).double()
        root = torch.softmax(first[[seqs[0][0], seqs[2][0]]], dim=-1)
        with torch.no_grad():
            longer = torch.cat([embeds, table(torch.tensor([[seqs[0][0]]]))], dim=1)
        second = hand.next_logits(longer).double()
        split = torch.softmax(second[[seqs[0][1], seqs[1][1]]], dim=-1)
        expected = [root[0] * split[0], root[0] * split[1], root[1]]
        p = answer.probabilities
        np.testing.assert_allclose(
            [p.good, p.normal, p.bad], [float(e) for e in expected], atol=1e-5
        )


def test_a_tower_saved_without_its_pooling_head_loads(
    tmp_path: Path, tiny_vila_dir: Path, videos
) -> None:
    """VILA never uses SigLIP's pooling head, so a vision_tower/ without it must load."""
    root = _write_foreign(tmp_path / "nohead", tiny_vila_dir)
    path = root / "vision_tower" / "model.safetensors"
    state = load_file(str(path))
    assert any(".head." in k for k in state)
    save_file({k: v for k, v in state.items() if ".head." not in k}, str(path))
    backend = VlmBackend(VlmOptions(model=root, templates="lift-13b"))
    _assert_judged(_judge_all(backend, videos["judder3"]))


def test_the_adapter_merges_as_its_config_says(
    tmp_path: Path, tiny_vila_dir: Path, tiny_vila_lora_dir: Path
) -> None:
    """W + (alpha / r) B A for every LoRA layer; non-LoRA tensors replace the base's,
    also under transformers 4.x names (SigLIP's vision_model. level)."""
    lora = _copy(tiny_vila_lora_dir, tmp_path / "lora")
    config = json.loads((lora / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    non_lora = torch.load(lora / "non_lora_trainables.bin", weights_only=True)
    tower_key = "vision_model.encoder.layers.0.mlp.fc1.weight"
    tuned_fc1 = load_file(str(tiny_vila_dir / "vision_tower" / "model.safetensors"))[tower_key] + 1
    non_lora[f"base_model.model.vision_tower.vision_tower.{tower_key}"] = tuned_fc1
    torch.save(non_lora, lora / "non_lora_trainables.bin")
    tuned = VlmBackend(VlmOptions(model=tiny_vila_dir, adapter=lora, templates="lift-13b"))
    model = tuned.scorer.model
    base = load_file(str(tiny_vila_dir / "llm" / "model.safetensors"))
    weights = load_file(str(lora / "adapter_model.safetensors"))
    own = dict(model.llm.named_parameters())
    merged = 0
    for key, a in weights.items():
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("base_model.model.llm.").split(".lora_A.")[0]
        b = weights[key.replace(".lora_A.", ".lora_B.")]
        expected = base[f"{module}.weight"] + scale * (b @ a)
        torch.testing.assert_close(own[f"{module}.weight"], expected, atol=1e-5, rtol=1e-5)
        merged += 1
    assert merged == len(config["target_modules"])
    projector = dict(model.mm_projector.named_parameters())
    for key, value in non_lora.items():
        if key.startswith("base_model.model.mm_projector."):
            assert torch.equal(projector[key.removeprefix("base_model.model.mm_projector.")], value)
    fc1 = model.vision_tower.vision_tower
    fc1 = getattr(fc1, "vision_model", fc1).encoder.layers[0].mlp.fc1.weight
    assert torch.equal(fc1, tuned_fc1)


def test_lora_on_the_tower_under_4x_names_merges(
    tmp_path: Path, tiny_vila_dir: Path, tiny_vila_lora_dir: Path
) -> None:
    """VILA's lora_vt names the tower's layers with transformers 4.x's vision_model. level."""
    lora = _copy(tiny_vila_lora_dir, tmp_path / "lora")
    config = json.loads((lora / "adapter_config.json").read_text())
    module = "vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"
    config["target_modules"] = [*config["target_modules"], module]
    (lora / "adapter_config.json").write_text(json.dumps(config))
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(config["r"], 32, generator=gen)
    b = torch.randn(32, config["r"], generator=gen)
    _edit_adapter(
        lora,
        lambda w: w.update(
            {
                f"base_model.model.{module}.lora_A.weight": a,
                f"base_model.model.{module}.lora_B.weight": b,
            }
        ),
    )
    tuned = VlmBackend(VlmOptions(model=tiny_vila_dir, adapter=lora, templates="lift-13b"))
    tower = tuned.scorer.model.vision_tower.vision_tower
    q = getattr(tower, "vision_model", tower).encoder.layers[0].self_attn.q_proj.weight
    base = load_file(str(tiny_vila_dir / "vision_tower" / "model.safetensors"))
    expected = base["vision_model.encoder.layers.0.self_attn.q_proj.weight"] + (
        config["lora_alpha"] / config["r"]
    ) * (b @ a)
    torch.testing.assert_close(q, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"peft_type": "IA3"}, "IA3 adapter"),
        ({"r": "x"}, "r must be a positive integer"),
        ({"r": 0}, "r must be a positive integer"),
        ({"target_modules": ["vision_tower.nothing.q_proj"]}, "match no layer"),
    ],
)
def test_an_adapter_config_that_is_not_a_usable_lora_is_refused(
    tiny_vila_dir: Path, lora: Path, change: dict[str, Any], expected: str
) -> None:
    _edit_json(lora / "adapter_config.json", **change)
    assert expected in _refused(tiny_vila_dir, lora)


@pytest.mark.parametrize(
    ("part", "change", "expected"),
    [
        ("config.json", {"mm_vision_select_layer": "x"}, "mm_vision_select_layer"),
        ("llm/config.json", {"hidden_size": "big"}, "hidden_size"),
        ("vision_tower/config.json", {"patch_size": None}, "patch_size"),
        ("vision_tower/preprocessor_config.json", {"size": [70, 70]}, "size"),
        ("vision_tower/preprocessor_config.json", {"image_mean": "x"}, "image_mean"),
        ("vision_tower/preprocessor_config.json", {"rescale_factor": "a"}, "rescale_factor"),
    ],
)
def test_malformed_config_values_are_refused_naming_the_field(
    tmp_path: Path, tiny_vila_dir: Path, part: str, change: dict[str, Any], expected: str
) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    _edit_json(root / part, **change)
    with pytest.raises(CheckpointError, match=expected):
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))


@pytest.mark.parametrize("part", ["vision_tower", "mm_projector", "llm"])
def test_unreadable_weights_are_refused_naming_the_part(
    tmp_path: Path, tiny_vila_dir: Path, part: str
) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    (root / part / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=f"{part}/"):
        VlmBackend(VlmOptions(model=root, templates="lift-13b"))


def test_internvit_critic_runs_its_vision_half_on_onnxruntime(
    tmp_path: Path, vila40: Path, videos
) -> None:
    from lift.services.critic.backends.vlm import vision_graph as vg

    vg.export(vila40, tmp_path / "graph")
    torch_b = VlmBackend(VlmOptions(model=vila40, templates="lift-40b"))
    onnx_b = VlmBackend(
        VlmOptions(
            model=vila40, templates="lift-40b", vision="onnx", vision_graph=tmp_path / "graph"
        )
    )
    for b in (torch_b, onnx_b):
        assert b.family.tokens_per_frame == 4
    a = torch_b.judge_batch([torch_b.prepare(videos["clean8"], "a ball", NEVER)], False, NEVER)[0]
    o = onnx_b.judge_batch([onnx_b.prepare(videos["clean8"], "a ball", NEVER)], False, NEVER)[0]
    for da, do in zip(a.dimensions, o.dimensions, strict=True):
        pa, po = da.probabilities, do.probabilities
        assert pa is not None and po is not None
        np.testing.assert_allclose(
            [pa.good, pa.normal, pa.bad], [po.good, po.normal, po.bad], atol=1e-4
        )


def test_a_second_weight_file_repeating_tensors_is_refused(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    shutil.copy(
        root / "mm_projector" / "model.safetensors", root / "mm_projector" / "z.safetensors"
    )
    msg = _refused(root)
    assert "z.safetensors" in msg and "repeats" in msg


def test_a_config_that_is_not_a_small_regular_file_is_refused(
    tmp_path: Path, tiny_vila_dir: Path
) -> None:
    root = _copy(tiny_vila_dir, tmp_path / "v")
    (root / "mm_projector" / "config.json").unlink()
    (root / "mm_projector" / "config.json").symlink_to("/dev/zero")
    assert "not a regular file" in _refused(root)
    (root / "mm_projector" / "config.json").unlink()
    (root / "mm_projector" / "config.json").write_text(" " * (17 * 1024 * 1024) + "{}")
    assert "MiB" in _refused(root)


def test_a_non_lora_file_that_is_text_is_refused_naming_it(
    tiny_vila_dir: Path, tiny_vila_lora_dir: Path, tmp_path: Path
) -> None:
    """A text file (or a Git LFS pointer) where the pickle should be: named, not a KeyError."""
    lora = _copy(tiny_vila_lora_dir, tmp_path / "lora")
    (lora / "non_lora_trainables.bin").write_text("hello, not a pickle\n")
    assert "non_lora_trainables.bin is refused" in _refused(tiny_vila_dir, lora)
    (lora / "non_lora_trainables.bin").write_text("version https://git-lfs.github.com/spec/v1\n")
    assert "git lfs pull" in _refused(tiny_vila_dir, lora)
