"""The vlm backend on the tiny random checkpoint: probabilities, reasons, batching, LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lift.critique import ASSESSED_LABELS, DIMENSIONS
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm.families import family_for
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video

NEVER = Deadline().check


@pytest.fixture(scope="module")
def backend(tiny_critic_dir: Path) -> VlmBackend:
    return VlmBackend(VlmOptions(model=tiny_critic_dir))


@pytest.fixture(scope="module")
def videos(mp4s: dict[str, bytes]):
    return {
        name: decode_video(mp4s[name], VideoLimits(), max_samples=8)
        for name in ("clean", "flicker", "frozen", "blur")
    }


def _judge(backend: VlmBackend, video, prompt: str, with_reasons: bool = True):
    return backend.judge_batch([backend.prepare(video, prompt, NEVER)], with_reasons, NEVER)[0]


def test_all_dimensions_assessed_with_probabilities_and_reasons(backend, videos) -> None:
    j = _judge(backend, videos["clean"], "a red ball rolls across green grass")
    assert [d.name for d in j.dimensions] == list(DIMENSIONS)
    for d in j.dimensions:
        p = d.probabilities
        assert p is not None and abs(p.good + p.normal + p.bad - 1) < 1e-6
        assert d.label in ASSESSED_LABELS
        assert d.label == ASSESSED_LABELS[int(np.argmax([p.good, p.normal, p.bad]))]
        assert len(d.reasons) == 1 and d.reasons[0].strip()
    scored = _judge(backend, videos["clean"], "a red ball rolls across green grass", False)
    assert all(d.reasons == () for d in scored.dimensions)
    assert [d.probabilities for d in scored.dimensions] == [d.probabilities for d in j.dimensions]


def test_probabilities_are_the_next_token_distribution_restricted_to_label_tokens(
    backend, videos
) -> None:
    scorer = backend.scorer
    tok = scorer.tokenizer
    for label, first in zip(ASSESSED_LABELS, scorer.label_ids, strict=True):
        assert tok.decode([first]) == scorer.templates.labels[label]
    item = backend.prepare(videos["clean"], "a dog", NEVER)
    model = scorer.model
    with torch.inference_mode():
        for row, dim in zip(item.rows, item.dims, strict=True):
            ids = torch.tensor([row])
            out = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pixel_values_videos=torch.from_numpy(item.vision.pixels),
                video_grid_thw=torch.tensor([item.vision.grid]),
                mm_token_type_ids=(ids == scorer.video_token_id).int() * 2,
            )
            full = torch.softmax(out.logits[0, -1].double(), dim=-1)
            expected = (full[scorer.label_ids] / full[scorer.label_ids].sum()).numpy()
            answer = scorer.run([item], False, NEVER)[0][item.dims.index(dim)]
            p = answer.probabilities
            np.testing.assert_allclose([p.good, p.normal, p.bad], expected, atol=2e-6)


def test_reason_follows_each_forced_label_and_parses(backend, videos) -> None:
    scorer = backend.scorer
    item = backend.prepare(videos["flicker"], "a ball", NEVER)
    for label in ASSESSED_LABELS:
        answers = scorer.run([item], True, NEVER, force=[label] * len(item.rows))[0]
        for a in answers:
            assert a.text is not None
            assert a.text.startswith(scorer.templates.answer_prefix(label).strip())
            assert scorer.templates.parse_answer(a.text) == (label, a.reason)
            assert a.reason and a.reason.strip()


def test_same_input_same_output(backend, videos) -> None:
    a = _judge(backend, videos["blur"], "a blurry scene")
    b = _judge(backend, videos["blur"], "a blurry scene")
    assert a == b


def test_prompt_changes_the_judgement(backend, videos) -> None:
    a = _judge(backend, videos["clean"], "a red ball", with_reasons=False)
    b = _judge(backend, videos["clean"], "an orchestra plays in a cathedral", with_reasons=False)
    assert [d.probabilities for d in a.dimensions] != [d.probabilities for d in b.dimensions]


def test_batched_equals_sequential(backend, videos) -> None:
    prompts = ["a red ball", "a long caption about a quiet street at dusk with two cyclists", "x"]
    names = ["clean", "flicker", "frozen"]
    items = [backend.prepare(videos[n], p, NEVER) for n, p in zip(names, prompts, strict=True)]
    for with_reasons in (False, True):
        batched = backend.judge_batch(items, with_reasons, NEVER)
        alone = [backend.judge_batch([it], with_reasons, NEVER)[0] for it in items]
        for b, s in zip(batched, alone, strict=True):
            for db, ds in zip(b.dimensions, s.dimensions, strict=True):
                assert db.label == ds.label and db.reasons == ds.reasons
                pb, ps = db.probabilities, ds.probabilities
                np.testing.assert_allclose(
                    [pb.good, pb.normal, pb.bad], [ps.good, ps.normal, ps.bad], atol=1e-5
                )


def test_lora_adapter_changes_outputs(backend, videos, tiny_critic_dir, tiny_lora_dir) -> None:
    tuned = VlmBackend(VlmOptions(model=tiny_critic_dir, adapter=tiny_lora_dir))
    assert tuned.model.name.endswith("+" + tiny_lora_dir.name)
    assert tuned.model.version != backend.model.version
    base = _judge(backend, videos["clean"], "a red ball", with_reasons=False)
    new = _judge(tuned, videos["clean"], "a red ball", with_reasons=False)
    diffs = [
        abs(a.probabilities.good - b.probabilities.good)
        for a, b in zip(base.dimensions, new.dimensions, strict=True)
    ]
    assert max(diffs) > 1e-3


def test_unsupported_model_type_names_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="qwen2_5_vl"):
        family_for("llama", tmp_path)


def test_label_words_sharing_first_tokens_are_scored_token_by_token(
    tiny_critic_dir, videos, tmp_path
) -> None:
    """Words that share a first token get P(shared) * P(rest | shared), not first-token odds."""
    from lift.templates import DEFAULT_TEMPLATES

    t = tmp_path / "t.toml"
    t.write_text(
        DEFAULT_TEMPLATES.read_text()
        .replace('good = "Good"', 'good = "Goodish"')
        .replace('normal = "Normal"', 'normal = "Goodly"')
    )
    b = VlmBackend(VlmOptions(model=tiny_critic_dir, templates=t))
    scorer = b.scorer
    g, n, bad = scorer.label_seqs
    assert g[0] == n[0] and g != n  # the case under test: a shared first token
    item = b.prepare(videos["clean"], "a dog", NEVER)
    answers = scorer.run([item], False, NEVER)[0]
    model = scorer.model
    with torch.inference_mode():
        for row, answer in zip(item.rows, answers, strict=True):

            def dist(extra: tuple[int, ...], row=row) -> torch.Tensor:
                ids = torch.tensor([list(row) + list(extra)])
                out = model(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    pixel_values_videos=torch.from_numpy(item.vision.pixels),
                    video_grid_thw=torch.tensor([item.vision.grid]),
                    mm_token_type_ids=(ids == scorer.video_token_id).int() * 2,
                )
                return torch.softmax(out.logits[0, -1].double(), dim=-1)

            def word(seq: tuple[int, ...]) -> float:
                p = 1.0
                for i, tok in enumerate(seq):
                    d = dist(seq[:i])
                    rivals = {s[i] for s in (g, n, bad) if len(s) > i and s[:i] == seq[:i]}
                    p *= float(d[tok] / sum(d[r] for r in rivals))
                return p

            expected = np.array([word(g), word(n), word(bad)])
            expected /= expected.sum()
            p = answer.probabilities
            np.testing.assert_allclose([p.good, p.normal, p.bad], expected, atol=3e-6)


def test_label_word_that_is_a_prefix_of_another_is_refused(tiny_critic_dir, tmp_path) -> None:
    from lift.templates import DEFAULT_TEMPLATES

    t = tmp_path / "t.toml"
    t.write_text(
        DEFAULT_TEMPLATES.read_text()
        .replace('good = "Good"', 'good = "Good"')
        .replace('normal = "Normal"', 'normal = "Goodly"')
    )
    with pytest.raises(ValueError, match="token prefix"):
        VlmBackend(VlmOptions(model=tiny_critic_dir, templates=t))


def test_checkpoint_has_everything_from_pretrained_needs(tiny_critic_dir: Path) -> None:
    names = {p.name for p in tiny_critic_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert json.loads((tiny_critic_dir / "config.json").read_text())["model_type"] == "qwen2_vl"


def test_qwen2_5_vl_family_with_time_aware_positions(tmp_path: Path, videos) -> None:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    model_dir = write_tiny_critic(tmp_path / "q25", family="qwen2_5_vl")
    b = VlmBackend(VlmOptions(model=model_dir))
    assert b.family.name == "qwen2_5_vl"
    items = [b.prepare(videos[n], "a ball", NEVER) for n in ("clean", "frozen")]
    batched = b.judge_batch(items, True, NEVER)
    for item, j in zip(items, batched, strict=True):
        alone = b.judge_batch([item], True, NEVER)[0]
        for x, y in zip(j.dimensions, alone.dimensions, strict=True):
            assert x.label == y.label and x.reasons == y.reasons and x.reasons[0]
            assert abs(x.probabilities.good - y.probabilities.good) < 1e-5
    # our positions equal the model's own when given the same seconds per temporal patch
    scorer, item = b.scorer, items[0]
    ids = torch.tensor([item.rows[0]])
    with torch.inference_mode():
        out = scorer.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values_videos=torch.from_numpy(item.vision.pixels),
            video_grid_thw=torch.tensor([item.vision.grid]),
            second_per_grid_ts=torch.tensor([item.vision.seconds_per_grid_t]),
            mm_token_type_ids=(ids == scorer.video_token_id).int() * 2,
        )
    full = torch.softmax(out.logits[0, -1].double(), dim=-1)[scorer.label_ids]
    p = scorer.run([item], False, NEVER)[0][0].probabilities
    np.testing.assert_allclose([p.good, p.normal, p.bad], (full / full.sum()).numpy(), atol=2e-6)
