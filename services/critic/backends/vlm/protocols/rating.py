"""The ``rating`` protocol: generative critics that answer a 1..N score per dimension.

VideoScore2 and UnifiedReward (pointwise) are asked one question per video and answer
a score per dimension ("visual quality: 4; text-to-video alignment: 3, ..."). The
published scripts sample that answer (VideoScore2 at temperature 0.7) and parse the
digits, so the scores change run to run. Here nothing is sampled:

1. the answer is forced, token by token with the KV cache, up to each score slot the
   template's ``answer`` layout defines (``lift/presets/videoscore2.toml``);
2. at a slot, the next-token logits restricted to the digit tokens ``min..max`` and
   soft-maxed give ``p(d)``; the dimension's expectation is ``E = sum d p(d)`` and its
   score ``(E - min) / (max - min)`` in [0, 1];
3. the digits split into bands (``>= good_from`` Good, ``<= bad_to`` Bad, the rest
   Normal): the band masses are the label probabilities and the label is the most likely
   band; that band's most likely digit is forced into the answer before the next text,
   so later scores are read after the digits the answer shows;
4. for ``Critique``, after the last slot the rationale is decoded greedily, so it
   follows the scores it explains and never contradicts them. It is the reason of every
   dimension the template maps (one answer covers them all).

Pairs, natively (``Compare``), when the template has a ``[rating.pairwise]`` table
(UnifiedReward): one prompt holds both videos (``{video_a}`` and ``{video_b}`` mark their
places in the user turn; Qwen2-VL / Qwen2.5-VL rows carry several videos, each placeholder
run expanded to its video's tokens, M-RoPE positions with one grid per video in row
order), and the model's next-token distribution restricted to the three answer texts
(a better / b better / tie), scored token by token where they share tokens
(:func:`~lift.services.critic.backends.vlm.scoring.branch_probabilities`, the rule the
label protocol uses for label words), gives P(a), P(b), P(tie). A native judge has a
position bias (P(a) with a shown first need not equal P(b) with it shown second), so each
pair is asked in both orders, in one batch, and the two answers averaged:

    prob_x = (P(first | x, y) + P(second | y, x)) / 2,  prob_tie likewise

which makes the result independent of which video the caller names first (swapping a
and b swaps prob_a and prob_b). That is UnifiedReward's overall judgment; it answers no
per-dimension question, so every dimension's preference is null (method
``native_both_orders``): per-dimension scores come from ``Score``.

Digits must be single tokens in their context (the answer tokenizes as its pieces
with each digit one token between them); a tokenizer that merges a digit with the text
around it, or splits one, is refused at start-up naming the slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lift.checkpoints import fingerprint, quiet_hf
from lift.critique import (
    DIMENSIONS,
    Dimension,
    DimensionPreference,
    DimensionVerdict,
    Label,
    LabelProbabilities,
    ModelInfo,
    Preference,
)
from lift.errors import InvalidInput
from lift.services.critic.backends.base import (
    Judgement,
    PairJudgement,
    motion_unassessed,
    one_frame,
)
from lift.services.critic.backends.vlm.backend import VlmOptions, load_checkpoint
from lift.services.critic.backends.vlm.families import Family, VisionInput
from lift.services.critic.backends.vlm.scoring import (
    _clean,
    blank_token_mask,
    branch_points,
    branch_probabilities,
    stop_ids,
)
from lift.templates import PAIR_ANSWERS, Rating, RatingPairwise, Templates, load_templates
from lift.video import DecodedVideo

log = logging.getLogger(__name__)

NOT_RATED = "Not assessed: the rating template ({name}) rates no slot as this dimension."


@dataclass(frozen=True)
class RatingItem:
    """One video's question, ready for the model."""

    vision: VisionInput
    row: tuple[int, ...]
    still: bool
    """One frame: motion is reported unassessed."""
    prompt: str = ""
    """The caption (a pairwise question is built from it and both videos)."""


PAIRWISE_METHOD = "native_both_orders"
"""Compare's method: the model's own pairwise answer, averaged over both video orders."""


@dataclass(frozen=True)
class SlotScore:
    """The model's score distribution at one slot."""

    probabilities: tuple[float, ...]
    """p(d) for d = min..max (restricted softmax), rounded to 6 decimals."""
    expectation: float
    digit: int
    """The digit forced into the answer (the most likely digit of the most likely band)."""
    bands: LabelProbabilities
    """The mass of the Good, Normal and Bad bands of digits."""


@dataclass(frozen=True)
class RatingAnswer:
    """The model's answer to one video's question."""

    slots: dict[str, SlotScore]
    rationale: str | None
    text: str | None
    """The whole answer (forced scores, then the rationale), when reasons were asked for."""
    rationale_ids: tuple[int, ...] = ()
    """The rationale's tokens as decoded."""


class RatingScorer:
    """Rating questions in, score distributions (and a rationale) out, for one loaded model."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        family: Family,
        templates: Templates,
        max_reason_tokens: int = 48,
    ) -> None:
        if templates.rating is None:
            raise ValueError(
                f"the rating protocol needs a template with a [rating] table "
                f"({templates.source} has none): use --templates videoscore2, unifiedreward or "
                "a file of that format"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.family = family
        self.templates = templates
        self.rating: Rating = templates.rating
        self.max_reason_tokens = max_reason_tokens
        self.video_token_id = family.placeholder_id(tokenizer)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        r = self.rating
        self.values = list(range(r.minimum, r.maximum + 1))
        self.digit_ids = self._digit_tokens()
        self.text_ids = [self._ids(t) for t in r.texts]
        self._check_context()
        self.bands = [
            [i for i, v in enumerate(self.values) if v >= r.good_from],
            [i for i, v in enumerate(self.values) if r.bad_to < v < r.good_from],
            [i for i, v in enumerate(self.values) if v <= r.bad_to],
        ]
        self.stop_ids = stop_ids(tokenizer, model, family, templates)
        self._blank = blank_token_mask(tokenizer, model, self.stop_ids)
        self.pairwise: RatingPairwise | None = self.rating.pairwise
        self.pair_branches = self._pair_branches() if self.pairwise is not None else []

    # -- set-up checks --------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.family.answer_ids(self.tokenizer, self.templates, text)) if text else []

    def _digit_tokens(self) -> list[int]:
        ids = []
        for v in self.values:
            toks = self._ids(str(v))
            if len(toks) != 1:
                raise ValueError(
                    f"the score {v} is {len(toks)} tokens in this tokenizer; the rating protocol "
                    "reads each score as one digit token (change min/max in [rating])"
                )
            ids.append(toks[0])
        if len(set(ids)) != len(ids):
            raise ValueError("two scores share one token in this tokenizer")
        return ids

    def _check_context(self) -> None:
        """Each slot's digit stays one token between its texts, whatever the other digits."""
        r = self.rating
        for k, slot in enumerate(r.slots):
            for v in self.values:
                scores = {s: r.minimum for s in r.slots} | {slot: v}
                expected: list[int] = list(self.text_ids[0])
                for s, ids in zip(r.slots, self.text_ids[1:], strict=True):
                    expected += [self.digit_ids[scores[s] - r.minimum], *ids]
                if self._ids(r.answer(scores)) != expected:
                    raise ValueError(
                        f"in this tokenizer the score {v} of slot {{{slot}}} (slot {k + 1}) does "
                        "not stay one token between the answer's texts (it merges with the text "
                        "around it); change the [rating] answer layout, e.g. a space or "
                        "punctuation around the slot"
                    )
        if not any(self.text_ids[1:-1]) and len(r.slots) > 1:  # parser already refuses this
            raise ValueError("the [rating] answer needs text between its slots")

    def _pair_branches(self) -> list[tuple[tuple[int, ...], dict[int, int]]]:
        """Where the pairwise answer texts part ways (their tokens as answered)."""
        assert self.pairwise is not None
        if not hasattr(self.family, "render_parts"):
            raise ValueError(
                f"[rating.pairwise] puts two videos in one prompt; the {self.family.name} "
                "family renders one video per prompt: remove [rating.pairwise] from the template"
            )
        texts = [self.pairwise.answers[k] for k in PAIR_ANSWERS]
        seqs = [tuple(self._ids(t)) for t in texts]
        return branch_points(seqs, texts, "pairwise answer", "[rating.pairwise]")

    # -- request-thread work ---------------------------------------------------
    def prepare(
        self, frames: np.ndarray, seconds_per_frame: float, prompt: str, still: bool = False
    ) -> RatingItem:
        vision = self.family.prepare(frames, seconds_per_frame)
        ids = self.family.render(
            self.tokenizer, self.templates, self.rating.question(prompt), vision
        )
        placed = sum(1 for t in ids if t == self.video_token_id)
        if placed != vision.num_tokens:
            raise ValueError(
                f"the prompt holds {placed} video positions for a video of {vision.num_tokens} "
                "tokens; the chat template must render the video exactly once"
            )
        limit = getattr(self.family, "max_length", None)
        if limit is not None and len(ids) > limit:
            raise ValueError(
                f"the question is {len(ids)} tokens with the video, over the model's {limit}; "
                "use a shorter prompt or fewer frames"
            )
        return RatingItem(vision, tuple(ids), still, prompt)

    def pair_row(self, first: RatingItem, second: RatingItem) -> tuple[int, ...]:
        """The pairwise question with ``first`` in the {video_a} slot, ``second`` in {video_b}."""
        assert self.pairwise is not None
        visions = (first.vision, second.vision)
        parts = [visions[p] if isinstance(p, int) else p for p in self.pairwise.parts(first.prompt)]
        ids = self.family.render_parts(self.tokenizer, self.templates, parts)  # type: ignore[attr-defined]
        placed = sum(1 for t in ids if t == self.video_token_id)
        if placed != first.vision.num_tokens + second.vision.num_tokens:
            raise ValueError(
                f"the pairwise prompt holds {placed} video positions for two videos of "
                f"{first.vision.num_tokens} and {second.vision.num_tokens} tokens"
            )
        limit = getattr(self.family, "max_length", None)
        if limit is not None and len(ids) > limit:
            raise ValueError(
                f"the pairwise question is {len(ids)} tokens with both videos, over the "
                f"model's {limit}; use a shorter prompt or fewer frames"
            )
        return tuple(ids)

    @torch.inference_mode()
    def pair_probabilities(
        self, rows: Sequence[tuple[RatingItem, RatingItem]], check: Callable[[], None]
    ) -> np.ndarray:
        """(rows, 3) P(a), P(b), P(tie) of each ordered pair (``a`` in the {video_a} slot).

        One forward over all rows (left-padded, two videos each), the answer position's
        logits restricted to the three answer texts by :func:`branch_probabilities`.
        """
        model, family = self.model, self.family
        device = model.device
        tokens = [self.pair_row(x, y) for x, y in rows]
        visions = [v for x, y in rows for v in (x.vision, y.vision)]
        video_embeds = family.encode_videos(model, visions)
        check()
        n, width = len(rows), max(len(t) for t in tokens)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for b, row in enumerate(tokens):
            ids[b, width - len(row) :] = torch.tensor(row)
            mask[b, width - len(row) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        placed = ids == self.video_token_id
        embeds = family.embed(model, ids.masked_fill(placed, self.pad_id))
        # Row-major placeholder order is the rows' videos in order: a's, then b's, per row.
        embeds = embeds.masked_scatter(
            placed.unsqueeze(-1), torch.cat(video_embeds).to(embeds.dtype)
        )
        positions = family.position_ids(model, ids, mask, visions)
        logits, _ = family.decode(model, embeds, mask, positions)
        check()
        return branch_probabilities(
            model, family, self.pair_branches, 3, logits, embeds, mask, positions
        )

    def compare(
        self, pairs: Sequence[tuple[RatingItem, RatingItem]], check: Callable[[], None]
    ) -> list[Preference]:
        """The overall preference of each pair, asked in both orders and averaged."""
        rows = [order for a, b in pairs for order in ((a, b), (b, a))]
        p = self.pair_probabilities(rows, check)
        out = []
        for i in range(len(pairs)):
            ab, ba = p[2 * i], p[2 * i + 1]
            out.append(
                Preference(
                    round(float((ab[0] + ba[1]) / 2), 6),
                    round(float((ab[1] + ba[0]) / 2), 6),
                    round(float((ab[2] + ba[2]) / 2), 6),
                )
            )
        return out

    # -- model-thread work -----------------------------------------------------
    def choose(self, p: np.ndarray) -> tuple[int, LabelProbabilities]:
        """(digit index to force, band probabilities) from a slot's digit distribution."""
        mass = [float(p[band].sum()) if band else 0.0 for band in self.bands]
        probs = _rounded(mass)
        best = self.bands[_LABEL_ORDER.index(probs.most_likely())]
        return best[int(np.argmax(p[best]))], probs

    @torch.inference_mode()
    def run(
        self,
        items: Sequence[RatingItem],
        with_reasons: bool,
        check: Callable[[], None],
        force: Sequence[Sequence[int]] | None = None,
    ) -> list[RatingAnswer]:
        """Score every item; ``force`` (digits per slot, per item) overrides the chosen digits."""
        model, family = self.model, self.family
        device = model.device
        n = len(items)
        embeds_per_video = family.encode_videos(model, [it.vision for it in items])
        check()
        width = max(len(it.row) for it in items)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for b, it in enumerate(items):
            ids[b, width - len(it.row) :] = torch.tensor(it.row)
            mask[b, width - len(it.row) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        placed = ids == self.video_token_id
        embeds = family.embed(model, ids.masked_fill(placed, self.pad_id))
        embeds = embeds.masked_scatter(
            placed.unsqueeze(-1), torch.cat(embeds_per_video).to(embeds.dtype)
        )
        positions = family.position_ids(model, ids, mask, [it.vision for it in items])
        logits, cache = family.decode(model, embeds, mask, positions, use_cache=True)
        step = 0  # answer tokens fed so far
        digit_ids = torch.tensor(self.digit_ids, device=device)
        chosen: list[list[int]] = [[] for _ in range(n)]
        bands: list[list[LabelProbabilities]] = [[] for _ in range(n)]
        dists: list[list[np.ndarray]] = [[] for _ in range(n)]
        fed: list[list[int]] = [[] for _ in range(n)]
        pending = [list(self.text_ids[0]) for _ in range(n)]
        for k in range(len(self.rating.slots)):
            if pending[0]:
                logits, cache, mask = self._feed(pending, cache, mask, positions, step)
                step += len(pending[0])
                for b in range(n):
                    fed[b] += pending[b]
            p = torch.softmax(logits[:, digit_ids].double(), dim=-1).cpu().numpy()
            for b in range(n):
                digit, band = self.choose(p[b])
                bands[b].append(band)
                if force is not None:
                    digit = force[b][k] - self.rating.minimum
                chosen[b].append(digit)
                dists[b].append(p[b])
            last = k == len(self.rating.slots) - 1
            if last and not with_reasons:
                break
            pending = [[self.digit_ids[chosen[b][k]], *self.text_ids[k + 1]] for b in range(n)]
            check()
        texts: list[str | None] = [None] * n
        rationales: list[str | None] = [None] * n
        out: list[list[int]] = [[] for _ in range(n)]
        if with_reasons:
            logits, cache, mask = self._feed(pending, cache, mask, positions, step)
            step += len(pending[0])
            for b in range(n):
                fed[b] += pending[b]
            out = self._decode(logits, cache, mask, positions, step, check)
            for b in range(n):
                rationales[b] = _clean(self.tokenizer.decode(out[b], skip_special_tokens=True))
                texts[b] = self.tokenizer.decode(fed[b] + out[b], skip_special_tokens=True)
        answers = []
        for b in range(n):
            slots = {}
            for k, slot in enumerate(self.rating.slots):
                p = dists[b][k]
                e = float(np.dot(self.values, p))
                slots[slot] = SlotScore(
                    tuple(round(float(x), 6) for x in p),
                    round(e, 6),
                    self.values[chosen[b][k]],
                    bands[b][k],
                )
            answers.append(RatingAnswer(slots, rationales[b], texts[b], tuple(out[b])))
        return answers

    def _feed(
        self, tokens: list[list[int]], cache: Any, mask: torch.Tensor, positions: Any, step: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Feed one equal-length chunk of forced tokens per row; logits after its last token."""
        model, family, device = self.model, self.family, self.model.device
        k = len(tokens[0])
        chunk = torch.tensor(tokens, device=device)
        mask = torch.cat([mask, torch.ones((len(tokens), k), dtype=mask.dtype, device=device)], 1)
        pos = torch.cat([family.next_position_ids(positions, step + i) for i in range(k)], -1)
        logits, cache = family.decode(
            model, family.embed(model, chunk), mask, pos, past_key_values=cache, use_cache=True
        )
        return logits, cache, mask

    def _decode(
        self,
        logits: torch.Tensor,
        cache: Any,
        mask: torch.Tensor,
        positions: Any,
        step: int,
        check: Callable[[], None],
    ) -> list[list[int]]:
        """Greedy rationale tokens per row: something besides whitespace, then until a stop."""
        n = logits.shape[0]
        device = self.model.device
        stop = torch.tensor(sorted(self.stop_ids), device=device)
        blank = self._blank.to(device)
        out: list[list[int]] = [[] for _ in range(n)]
        has_text = [False] * n
        done = [False] * n
        for _ in range(self.max_reason_tokens):
            logits = logits.float()
            nxt = []
            for b in range(n):
                row = logits[b]
                if not has_text[b]:
                    row = row.masked_fill(blank[: row.shape[0]], float("-inf"))
                    row[stop[stop < row.shape[0]]] = float("-inf")
                tok = int(torch.argmax(row))
                if done[b] or tok in self.stop_ids:
                    done[b] = True
                    nxt.append(self.pad_id)
                    continue
                out[b].append(tok)
                has_text[b] = has_text[b] or not bool(self._blank[tok])
                nxt.append(tok)
            if all(done):
                break
            logits, cache, mask = self._feed([[t] for t in nxt], cache, mask, positions, step)
            step += 1
            check()
        return out


_LABEL_ORDER = (Label.GOOD, Label.NORMAL, Label.BAD)


def _rounded(mass: Sequence[float]) -> LabelProbabilities:
    good, normal = round(mass[0], 6), round(mass[1], 6)
    return LabelProbabilities(good=good, normal=normal, bad=round(max(0.0, 1 - good - normal), 6))


class RatingBackend:
    """The ``rating`` protocol as a critic backend (see the module docstring)."""

    assessed: tuple[Dimension, ...] = DIMENSIONS
    pixel_format = "rgb24"
    batched = True
    protocol = "rating"

    @property
    def score_semantics(self) -> str:
        """What a dimension's score means (GetInfo): the expected digit mapped onto [0, 1]."""
        r = self.rating
        return f"rating_expected_score_{r.minimum}_{r.maximum}_to_0_1"

    def __init__(self, options: VlmOptions) -> None:
        quiet_hf()
        templates = load_templates(options.templates)
        if templates.rating is None:
            raise ValueError(
                f"the rating protocol needs a rating template (a [rating] table); "
                f"{templates.source} has none: use --templates videoscore2 or unifiedreward"
            )
        if options.vision != "torch":
            raise ValueError(
                "the rating protocol runs its vision tower in torch (backend vlm); "
                f"{options.vision} is for the labels protocol"
            )
        self.family, model, tokenizer = load_checkpoint(options)
        self.scorer = RatingScorer(
            model, tokenizer, self.family, templates, options.max_reason_tokens
        )
        self.rating = self.scorer.rating
        self.max_frames = options.num_frames
        self.frame_sampling = self.family.sampling
        name = options.model.name + (f"+{options.adapter.name}" if options.adapter else "")
        self.model = ModelInfo(
            backend="vlm", name=name, version=fingerprint(options.model, options.adapter)
        )
        log.info(
            "vlm critic (rating protocol, %s): %s (%s) on %s",
            self.rating.name,
            name,
            self.family.name,
            model.device,
        )

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> RatingItem:
        if video.num_sampled > 1:
            spf = float(np.mean(np.diff(video.timestamps)))
        else:
            spf = 1.0 / video.fps if video.fps > 0 else 1.0
        try:
            return self.scorer.prepare(video.frames, spf, prompt, one_frame(video))
        except ValueError as exc:
            raise InvalidInput(f"the model cannot take this video: {exc}") from None

    def verdicts(self, answer: RatingAnswer, with_reasons: bool) -> tuple[DimensionVerdict, ...]:
        """One verdict per LiFT dimension from an answer (unmapped dimensions unassessed)."""
        r = self.rating
        by_dim = {dim: slot for slot, dim in r.dimensions.items()}
        out = []
        for dim in DIMENSIONS:
            slot = by_dim.get(dim)
            if slot is None:
                v = DimensionVerdict.unassessed(dim, NOT_RATED.format(name=r.name))
                out.append(v if with_reasons else v.without_reasons())
                continue
            s = answer.slots[slot]
            probs = s.bands
            score = round((s.expectation - r.minimum) / (r.maximum - r.minimum), 6)
            score = min(1.0, max(0.0, score))
            reasons = (answer.rationale,) if with_reasons and answer.rationale else ()
            out.append(DimensionVerdict(dim, probs.most_likely(), score, probs, reasons))
        return tuple(out)

    def judge_batch(
        self, prepared: Sequence[RatingItem], with_reasons: bool, check: Callable[[], None]
    ) -> list[Judgement]:
        answers = self.scorer.run(prepared, with_reasons, check)
        results = []
        for item, answer in zip(prepared, answers, strict=True):
            dims = self.verdicts(answer, with_reasons)
            if item.still:
                dims = motion_unassessed(dims)
                if not with_reasons:
                    dims = tuple(d.without_reasons() for d in dims)
            results.append(Judgement(dims))
        return results


class PairwiseRatingBackend(RatingBackend):
    """A rating backend whose template judges pairs natively ([rating.pairwise]).

    ``Compare`` asks the model's own pairwise question (see the module docstring); the
    engine finds :meth:`compare_batch` and does not derive preferences from scores.
    """

    def __init__(self, options: VlmOptions) -> None:
        super().__init__(options)
        if self.scorer.pairwise is None:
            raise ValueError(
                f"the rating template {self.rating.name} has no [rating.pairwise] table"
            )

    def compare_batch(
        self, prepared_pairs: Sequence[tuple[RatingItem, RatingItem]], check: Callable[[], None]
    ) -> list[PairJudgement]:
        for a, b in prepared_pairs:
            if a.prompt != b.prompt:
                raise InvalidInput("the two videos of a comparison must share one prompt")
        try:
            overall = self.scorer.compare(prepared_pairs, check)
        except ValueError as exc:
            raise InvalidInput(f"the model cannot take this pair: {exc}") from None
        dims = tuple(DimensionPreference(d) for d in DIMENSIONS)
        return [PairJudgement(dims, o, PAIRWISE_METHOD) for o in overall]


def rating_backend(options: VlmOptions) -> RatingBackend:
    """The rating backend for ``options``: pairwise-native when the template says so."""
    templates = load_templates(options.templates)
    if templates.rating is not None and templates.rating.pairwise is not None:
        return PairwiseRatingBackend(options)
    return RatingBackend(options)


__all__ = [
    "PAIRWISE_METHOD",
    "PairwiseRatingBackend",
    "RatingAnswer",
    "RatingBackend",
    "RatingItem",
    "RatingScorer",
    "SlotScore",
    "rating_backend",
]
