"""The rating protocol on a tiny random Qwen2.5-VL: expected scores, rationale, presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lift.critique import DIMENSIONS, Dimension, Label
from lift.services.critic.backends.vlm.backend import VlmOptions
from lift.services.critic.backends.vlm.protocols import create, detect
from lift.services.critic.backends.vlm.protocols.rating import RatingBackend, RatingScorer
from lift.serving import Deadline
from lift.templates import PRESETS, TemplateError, load_templates
from lift.video import VideoLimits, decode_video

NEVER = Deadline().check
PROMPT = "a red ball rolls across green grass"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    return write_tiny_critic(tmp_path_factory.mktemp("tiny-q25"), family="qwen2_5_vl")


@pytest.fixture(scope="module", params=["videoscore2", "unifiedreward"])
def backend(request: pytest.FixtureRequest, model_dir: Path) -> RatingBackend:
    b = create("auto", VlmOptions(model=model_dir, templates=request.param))
    assert isinstance(b, RatingBackend)
    return b


@pytest.fixture(scope="module")
def videos(mp4s: dict[str, bytes]) -> dict[str, Any]:
    return {
        n: decode_video(mp4s[n], VideoLimits(), max_samples=8) for n in ("clean", "flicker", "blur")
    }


# -- presets and template files ------------------------------------------------------


def test_presets_parse_with_their_scales_and_dimension_maps() -> None:
    vs2 = load_templates("videoscore2").rating
    assert vs2 is not None and (vs2.minimum, vs2.maximum) == (1, 5)
    assert (vs2.good_from, vs2.bad_to) == (4, 2)
    assert vs2.dimensions == {
        "visual_quality": Dimension.VIDEO_FIDELITY,
        "text_alignment": Dimension.SEMANTIC_CONSISTENCY,
        "physical_consistency": Dimension.MOTION_SMOOTHNESS,
    }
    q = vs2.question("a cat")
    assert "Video prompt: a cat\n" in q and "{prompt}" not in q
    assert q.startswith("\nYou are an expert for evaluating AI-generated videos")
    scores = {"visual_quality": 3, "text_alignment": 4, "physical_consistency": 2}
    assert vs2.answer(scores) == (
        "visual quality: 3;\ntext-to-video alignment: 4,\nphysical/common-sense consistency: 2"
    )
    ur = load_templates("unifiedreward").rating
    assert ur is not None and (ur.minimum, ur.maximum, ur.good_from, ur.bad_to) == (1, 4, 3, 1)
    assert ur.slots[2] == "dynamic_degree" and "dynamic_degree" not in ur.dimensions
    assert ur.question("x").endswith("Text Prompt: [x]")
    assert load_templates().rating is None and load_templates("lift-13b").rating is None


def test_backend_says_its_protocol_and_score_semantics(backend: RatingBackend) -> None:
    r = backend.rating
    assert backend.protocol == "rating"
    assert backend.score_semantics == f"rating_expected_score_{r.minimum}_{r.maximum}_to_0_1"
    assert backend.frame_sampling == "time" and backend.model.backend == "vlm"


def test_detect_picks_the_rating_protocol_from_the_templates(model_dir: Path) -> None:
    assert detect(model_dir, "videoscore2") == "rating"
    assert detect(model_dir, "unifiedreward") == "rating"
    assert detect(model_dir, None) == "labels"
    assert detect(model_dir, "lift-13b") == "labels"


def test_protocol_and_templates_must_agree(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="rating protocol"):
        create("labels", VlmOptions(model=model_dir, templates="videoscore2"))
    with pytest.raises(ValueError, match=r"\[rating\] table"):
        create("rating", VlmOptions(model=model_dir))


def _vs2_text() -> str:
    return (PRESETS / "videoscore2.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("Video prompt: {prompt}", "Video prompt:"), "{prompt} exactly once"),
        (lambda s: s.replace("max = 5", "max = 10"), "0 <= min < max <= 9"),
        (lambda s: s.replace("max = 5", 'max = "5"'), "max must be a whole number"),
        (lambda s: s.replace("good_from = 4", "good_from = 2"), "bad_to < good_from"),
        (lambda s: s.replace("bad_to = 2\n", ""), "bad_to must be a whole number"),
        (lambda s: s.replace('= "motion_smoothness"', '= "physics"'), "is not a dimension"),
        (lambda s: s.replace("text_alignment = ", "alignment = "), "not a slot of the answer"),
        (
            lambda s: s.replace('= "motion_smoothness"', '= "video_fidelity"'),
            "two slots to one dimension",
        ),
        (lambda s: s.replace("{visual_quality};", "{visual_quality}{x};"), "text between them"),
        (lambda s: s.replace("{text_alignment}", "{visual_quality}"), "names a slot twice"),
        (lambda s: s.replace("{visual_quality}", "{Visual}"), "stray brace"),
        (lambda s: s.replace("min = 1", "min = 1\nscale = 3"), "unknown keys in [rating]"),
        (lambda s: s + '\n[labels]\ngood = "Good"\n', "holds only [rating] and system"),
    ],
)
def test_broken_rating_templates_are_refused_naming_the_fault(
    edit: Any, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(edit(_vs2_text()), encoding="utf-8")
    with pytest.raises(TemplateError, match=__import__("re").escape(message)):
        load_templates(path)


class _SplitDigits:
    """A family whose tokenizer answers the score 4 in two tokens, or merges it with text."""

    def __init__(self, family: Any, mode: str) -> None:
        self._family, self._mode = family, mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._family, name)

    def answer_ids(self, tokenizer: Any, templates: Any, text: str) -> list[int]:
        ids = self._family.answer_ids(tokenizer, templates, text)
        if self._mode == "split" and text == "4":
            return ids + ids
        if self._mode == "merge" and text != "4" and "4" in text:
            return [*ids[:-1], ids[-1] + 1]  # the tokens around a 4 differ from its pieces
        return ids


@pytest.mark.parametrize(("mode", "message"), [("split", "4 is 2 tokens"), ("merge", "merges")])
def test_digits_that_are_not_single_tokens_in_context_are_refused(
    backend: RatingBackend, mode: str, message: str
) -> None:
    s = backend.scorer
    with pytest.raises(ValueError, match=message):
        RatingScorer(s.model, s.tokenizer, _SplitDigits(s.family, mode), s.templates)  # type: ignore[arg-type]


# -- scores ------------------------------------------------------------------------------


def _forward_probs(scorer: RatingScorer, item: Any, answer_ids: list[int]) -> np.ndarray:
    """The digit distribution after the prompt and ``answer_ids``, from one plain forward."""
    ids = torch.tensor([list(item.row) + answer_ids])
    with torch.inference_mode():
        out = scorer.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values_videos=torch.from_numpy(item.vision.pixels),
            video_grid_thw=torch.tensor([item.vision.grid]),
            second_per_grid_ts=torch.tensor([item.vision.seconds_per_grid_t]),
            mm_token_type_ids=(ids == scorer.video_token_id).int() * 2,
        )
    full = torch.softmax(out.logits[0, -1].double(), dim=-1)
    digits = full[scorer.digit_ids]
    return (digits / digits.sum()).numpy()


def test_expectation_is_the_digit_distribution_of_the_model(backend, videos) -> None:
    s = backend.scorer
    r = s.rating
    item = backend.prepare(videos["clean"], PROMPT, NEVER)
    answer = s.run([item], False, NEVER)[0]
    forced: list[int] = list(s.text_ids[0])
    for k, slot in enumerate(r.slots):
        expected = _forward_probs(s, item, forced)
        got = answer.slots[slot]
        np.testing.assert_allclose(got.probabilities, expected, atol=2e-5)
        assert got.expectation == pytest.approx(float(np.dot(s.values, expected)), abs=5e-5)
        forced += [s.digit_ids[got.digit - r.minimum], *s.text_ids[k + 1]]
    verdicts = {v.name: v for v in backend.verdicts(answer, False)}
    for slot, dim in r.dimensions.items():
        sc = answer.slots[slot]
        v = verdicts[dim]
        assert v.score == pytest.approx((sc.expectation - r.minimum) / (r.maximum - r.minimum))
        p = np.array(sc.probabilities)
        values = np.array(s.values)
        good = p[values >= r.good_from].sum()
        bad = p[values <= r.bad_to].sum()
        assert v.probabilities.good == pytest.approx(good, abs=2e-6)
        assert v.probabilities.bad == pytest.approx(bad, abs=2e-6)
        assert v.label == v.probabilities.most_likely()


def test_forced_digit_is_the_best_of_the_label_band_and_the_rationale_follows_it(
    backend, videos
) -> None:
    s = backend.scorer
    r = s.rating
    item = backend.prepare(videos["flicker"], PROMPT, NEVER)
    answer = s.run([item], True, NEVER)[0]
    for slot in r.slots:
        sc = answer.slots[slot]
        label = sc.bands.most_likely()
        band = [
            v
            for v in s.values
            if (label == Label.GOOD and v >= r.good_from)
            or (label == Label.BAD and v <= r.bad_to)
            or (label == Label.NORMAL and r.bad_to < v < r.good_from)
        ]
        assert sc.digit in band
        assert sc.probabilities[sc.digit - r.minimum] == max(
            sc.probabilities[v - r.minimum] for v in band
        )
    digits = {slot: answer.slots[slot].digit for slot in r.slots}
    assert answer.text is not None and answer.text.startswith(r.answer(digits))
    assert answer.rationale and answer.rationale.strip()
    # The rationale is the greedy continuation of exactly that answer: one forward per token.
    ids = list(s.text_ids[0])
    for k, slot in enumerate(r.slots):
        ids += [s.digit_ids[digits[slot] - r.minimum], *s.text_ids[k + 1]]
    assert _forward_next(s, item, ids) == answer.rationale_ids[0]
    if len(answer.rationale_ids) > 2:
        later = _forward_next(s, item, ids + list(answer.rationale_ids[:2]), first=False)
        assert later == answer.rationale_ids[2]
    assert s.tokenizer.decode(answer.rationale_ids) == answer.text[len(r.answer(digits)) :]
    # Other digits forced in give another continuation (the rationale depends on the scores).
    other = [s.values[-1] if d != s.values[-1] else s.values[0] for d in digits.values()]
    changed = s.run([item], True, NEVER, force=[other])[0]
    assert changed.text is not None
    assert changed.text.startswith(r.answer(dict(zip(r.slots, other, strict=True))))
    verdicts = backend.verdicts(answer, True)
    for v in verdicts:
        if v.name in r.dimensions.values():
            assert v.reasons == (answer.rationale,)


def _forward_next(
    scorer: RatingScorer, item: Any, answer_ids: list[int], first: bool = True
) -> int:
    ids = torch.tensor([list(item.row) + answer_ids])
    with torch.inference_mode():
        out = scorer.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values_videos=torch.from_numpy(item.vision.pixels),
            video_grid_thw=torch.tensor([item.vision.grid]),
            second_per_grid_ts=torch.tensor([item.vision.seconds_per_grid_t]),
            mm_token_type_ids=(ids == scorer.video_token_id).int() * 2,
        )
    row = out.logits[0, -1].float()
    if first:  # the first rationale token says something (no stop, no whitespace)
        row = row.masked_fill(scorer._blank[: row.shape[0]], float("-inf"))
        for t in scorer.stop_ids:
            row[t] = float("-inf")
    return int(torch.argmax(row))


def test_repeats_are_identical_and_batches_equal_single_runs(backend, videos) -> None:
    items = [backend.prepare(videos[n], PROMPT + n, NEVER) for n in ("clean", "flicker", "blur")]
    once = backend.judge_batch(items, True, NEVER)
    assert backend.judge_batch(items, True, NEVER) == once
    for item, batched in zip(items, once, strict=True):
        alone = backend.judge_batch([item], True, NEVER)[0]
        for a, b in zip(alone.dimensions, batched.dimensions, strict=True):
            assert a.label == b.label and a.reasons == b.reasons
            if a.score is not None:
                assert a.score == pytest.approx(b.score, abs=1e-5)
                assert a.probabilities.good == pytest.approx(b.probabilities.good, abs=1e-5)
    scored = backend.judge_batch(items, False, NEVER)
    for s, c in zip(scored, once, strict=True):
        assert [d.score for d in s.dimensions] == [d.score for d in c.dimensions]
        assert all(d.reasons == () for d in s.dimensions)


def test_every_dimension_is_reported_and_a_still_has_no_motion(backend, mp4s) -> None:
    still = decode_video(mp4s["clean"], VideoLimits(), max_samples=1)
    j = backend.judge_batch([backend.prepare(still, PROMPT, NEVER)], True, NEVER)[0]
    assert [d.name for d in j.dimensions] == list(DIMENSIONS)
    by = {d.name: d for d in j.dimensions}
    assert by[Dimension.MOTION_SMOOTHNESS].label == Label.UNASSESSED
    for dim in (Dimension.VIDEO_FIDELITY, Dimension.SEMANTIC_CONSISTENCY):
        assert by[dim].score is not None and 0.0 <= by[dim].score <= 1.0
