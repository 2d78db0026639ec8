"""Native pairwise judging of the rating protocol (UnifiedReward) on a tiny random Qwen2.5-VL.

P(a), P(b), P(tie) must be the model's own next-token distribution on the two-video prompt,
restricted to the three answer texts; checked here against a hand computation through the
model's full Hugging Face forward (its own vision merge and M-RoPE positions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lift.critique import DIMENSIONS, Preference
from lift.errors import InvalidInput
from lift.services.critic.backends.vlm.backend import VlmOptions
from lift.services.critic.backends.vlm.protocols import create
from lift.services.critic.backends.vlm.protocols.rating import (
    PAIRWISE_METHOD,
    PairwiseRatingBackend,
    RatingBackend,
    RatingItem,
)
from lift.serving import Deadline
from lift.templates import PRESETS, TemplateError, load_templates
from lift.video import VideoLimits, decode_video

NEVER = Deadline().check
PROMPT = "a red ball rolls across green grass"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    return write_tiny_critic(tmp_path_factory.mktemp("tiny-q25-pair"), family="qwen2_5_vl")


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> PairwiseRatingBackend:
    b = create("auto", VlmOptions(model=model_dir, templates="unifiedreward"))
    assert isinstance(b, PairwiseRatingBackend)
    return b


@pytest.fixture(scope="module")
def items(backend: PairwiseRatingBackend, mp4s: dict[str, bytes]) -> dict[str, RatingItem]:
    out = {}
    for name in ("clean", "blur"):
        video = decode_video(mp4s[name], VideoLimits(), max_samples=4)
        out[name] = backend.prepare(video, PROMPT, NEVER)
    return out


# -- the preset ----------------------------------------------------------------------


def test_the_unifiedreward_preset_holds_the_published_pairwise_question() -> None:
    rating = load_templates("unifiedreward").rating
    assert rating is not None and rating.pairwise is not None
    pw = rating.pairwise
    assert pw.answers == {
        "a": "Video 1 is better",
        "b": "Video 2 is better",
        "tie": "Both videos are equally good",
    }
    parts = pw.parts("a cat")
    assert parts[:2] == [0, 1] and len(parts) == 3  # video 1, video 2, then the text
    text = parts[2]
    assert isinstance(text, str)
    assert text.startswith("Imagine you are an expert tasked with evaluating AI-generated videos.")
    assert text.endswith("Your task is as follows:\nText Caption: [a cat]\n")
    assert "'Video 1 is better,' 'Video 2 is better,' or 'Both videos are equally good.'" in text
    vs2 = load_templates("videoscore2").rating
    assert vs2 is not None and vs2.pairwise is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("{video_b}Imagine", "Imagine"), "{video_b} exactly once"),
        (lambda s: s.replace("Text Caption: [{prompt}]", "Text"), "{prompt} exactly once"),
        (lambda s: s.replace('tie = "Both', 'draw = "Both'), "unknown keys in [rating.pairwise]"),
        (lambda s: s.replace('"Video 2 is better"', '"Video 1 is better"'), "three different"),
        (lambda s: s.replace('tie = "Both videos are equally good"', 'tie = " "'), "tie must"),
    ],
)
def test_broken_pairwise_tables_are_refused_naming_the_fault(
    tmp_path: Path, edit: Any, message: str
) -> None:
    path = tmp_path / "t.toml"
    path.write_text(edit((PRESETS / "unifiedreward.toml").read_text(encoding="utf-8")))
    with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_templates(path)


def test_a_template_without_a_pairwise_table_derives_pairs(model_dir: Path) -> None:
    b = create("auto", VlmOptions(model=model_dir, templates="videoscore2"))
    assert type(b) is RatingBackend and getattr(b, "compare_batch", None) is None


# -- the two-video prompt --------------------------------------------------------------


def _runs(row: tuple[int, ...], token: int) -> list[int]:
    """Lengths of the runs of ``token`` in ``row``."""
    runs, n = [], 0
    for t in (*row, -1):
        if t == token:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_the_pair_prompt_holds_both_videos_in_order(
    backend: PairwiseRatingBackend, items: dict[str, RatingItem]
) -> None:
    s = backend.scorer
    a, b = items["clean"], items["blur"]
    row = s.pair_row(a, b)
    assert _runs(row, s.video_token_id) == [a.vision.num_tokens, b.vision.num_tokens]
    text = s.tokenizer.decode([t for t in row if t != s.video_token_id])
    assert text.count("<|vision_start|><|vision_end|>") == 2
    assert "Text Caption: [" + PROMPT + "]" in text
    # the single-video question still renders one video
    assert _runs(a.row, s.video_token_id) == [a.vision.num_tokens]


def _hand_probabilities(
    backend: PairwiseRatingBackend, first: RatingItem, second: RatingItem
) -> np.ndarray:
    """P(a), P(b), P(tie) by hand: the HF model's own forward, restricted soft-maxes."""
    s = backend.scorer
    model = s.model
    row = list(s.pair_row(first, second))
    answers = [s._ids(s.pairwise.answers[k]) for k in ("a", "b", "tie")]  # type: ignore[union-attr]
    pixels = torch.from_numpy(np.concatenate([first.vision.pixels, second.vision.pixels]))
    grid = torch.tensor([first.vision.grid, second.vision.grid])
    seconds = torch.tensor([first.vision.seconds_per_grid_t, second.vision.seconds_per_grid_t])

    def next_logits(ids: list[int]) -> torch.Tensor:
        t = torch.tensor([ids])
        with torch.inference_mode():
            out = model(
                input_ids=t,
                attention_mask=torch.ones_like(t),
                pixel_values_videos=pixels,
                video_grid_thw=grid,
                second_per_grid_ts=seconds,
                mm_token_type_ids=(t == s.video_token_id).to(torch.int32) * 2,
            )
        return out.logits[0, -1].double()

    def restricted(logits: torch.Tensor, tokens: list[int]) -> dict[int, float]:
        p = torch.softmax(logits[tokens], dim=-1)
        return {tok: float(p[i]) for i, tok in enumerate(tokens)}

    # Tokens up to where the texts part ways; a product of restricted choices per text.
    probs = np.ones(3)
    depth = max(len(x) for x in answers)
    for d in range(depth):
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(answers):
            if len(x) > d:
                groups.setdefault(tuple(x[:d]), []).append(i)
        for prefix, members in groups.items():
            nexts = sorted({answers[i][d] for i in members})
            if len(nexts) < 2:
                continue
            p = restricted(next_logits(row + list(prefix)), nexts)
            for i in members:
                probs[i] *= p[answers[i][d]]
    return probs / probs.sum()


def test_probabilities_are_the_models_own_on_the_two_video_prompt(
    backend: PairwiseRatingBackend, items: dict[str, RatingItem]
) -> None:
    a, b = items["clean"], items["blur"]
    hand = [_hand_probabilities(backend, a, b), _hand_probabilities(backend, b, a)]
    assert not np.allclose(hand[0], hand[1][[1, 0, 2]], atol=1e-4)  # the order matters
    batch = backend.scorer.pair_probabilities([(a, b), (b, a)], NEVER)
    alone = [backend.scorer.pair_probabilities([pair], NEVER)[0] for pair in [(a, b), (b, a)]]
    for got in (*batch, *alone):
        assert got.sum() == pytest.approx(1.0, abs=1e-9)
    for got in (batch, alone):
        np.testing.assert_allclose(got, np.stack(hand), atol=2e-5)
    # The three texts share tokens ("Video" ...): more than one branch point is scored.
    assert len(backend.scorer.pair_branches) >= 2


def test_compare_averages_both_orders_and_repeats_identically(
    backend: PairwiseRatingBackend, items: dict[str, RatingItem]
) -> None:
    a, b = items["clean"], items["blur"]
    ab, ba = backend.scorer.pair_probabilities([(a, b), (b, a)], NEVER)
    [j] = backend.compare_batch([(a, b)], NEVER)
    assert j.method == PAIRWISE_METHOD
    assert [d.name for d in j.dimensions] == list(DIMENSIONS)
    assert all(d.preference == Preference() for d in j.dimensions)  # overall only
    o = j.overall
    assert o.prob_a == pytest.approx((ab[0] + ba[1]) / 2, abs=2e-6)
    assert o.prob_b == pytest.approx((ab[1] + ba[0]) / 2, abs=2e-6)
    assert o.prob_tie == pytest.approx((ab[2] + ba[2]) / 2, abs=2e-6)
    assert o.prob_a + o.prob_b + o.prob_tie == pytest.approx(1.0, abs=1e-5)  # type: ignore[operator]
    assert backend.compare_batch([(a, b)], NEVER)[0] == j  # repeats are identical
    # Both orders asked: naming the videos the other way round swaps the answer.
    [r] = backend.compare_batch([(b, a)], NEVER)
    assert r.overall.prob_a == pytest.approx(o.prob_b, abs=1e-6)
    assert r.overall.prob_b == pytest.approx(o.prob_a, abs=1e-6)
    # A batch of pairs answers each as alone.
    both = backend.compare_batch([(a, b), (a, a)], NEVER)
    assert both[0].overall.prob_a == pytest.approx(o.prob_a, abs=1e-6)
    same = both[1].overall
    assert same.prob_a == same.prob_b  # the same video in both slots prefers neither


def test_a_pair_of_two_prompts_is_refused(
    backend: PairwiseRatingBackend, items: dict[str, RatingItem], mp4s: dict[str, bytes]
) -> None:
    other = backend.prepare(decode_video(mp4s["blur"], VideoLimits(), max_samples=4), "x", NEVER)
    with pytest.raises(InvalidInput, match="share one prompt"):
        backend.compare_batch([(items["clean"], other)], NEVER)
