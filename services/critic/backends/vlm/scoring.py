"""Label probabilities and reasons from a video VLM, batched, deterministic.

For a batch of videos with three questions each (one per dimension):

1. one vision pass over all videos (the questions of a video share its encoding);
2. one text forward over all questions, left-padded: the next-token logits at
   the answer position, restricted to the three label words and soft-maxed,
   are the label probabilities (``Score`` stops here). Label words that share
   their first tokens are scored token by token: each point where the words
   part ways costs one more forward with the shared tokens appended, and a
   word's probability is the product of its restricted choices;
3. for ``Critique``, the answer is forced to start with the chosen label and
   the separator, then the reason is decoded greedily with the KV cache, so
   the text always reads ``"<Label>. <reason>"`` and never contradicts the label.

Everything is greedy and runs under ``torch.inference_mode``: the same input
gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lift.critique import ASSESSED_LABELS, Dimension, Label, LabelProbabilities
from lift.services.critic.backends.vlm.families import Family, VisionInput
from lift.templates import Templates


@dataclass(frozen=True)
class PreparedItem:
    """One video and its questions, ready for the model (built in a request thread)."""

    vision: VisionInput
    rows: tuple[tuple[int, ...], ...]
    """Token ids of each question (video placeholder expanded), in ``dims`` order."""
    dims: tuple[Dimension, ...]


@dataclass(frozen=True)
class Answer:
    """The model's answer to one question."""

    probabilities: LabelProbabilities
    label: Label
    reason: str | None
    text: str | None
    """The full decoded answer (``"<Label>. <reason>"``), when reasons were asked for."""


class VlmScorer:
    """Questions in, label probabilities (and reasons) out, for one loaded model."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        family: Family,
        templates: Templates,
        max_reason_tokens: int = 48,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.family = family
        self.templates = templates
        self.max_reason_tokens = max_reason_tokens
        self.max_length: int | None = getattr(family, "max_length", None)
        self.video_token_id = family.placeholder_id(tokenizer)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        self.label_seqs, self.forced = self._label_tokens()
        self.label_ids = [seq[0] for seq in self.label_seqs]
        words = [templates.labels[lab] for lab in ASSESSED_LABELS]
        self.branches = branch_points(self.label_seqs, words, "label word", "[labels]")
        self.stop_ids = stop_ids(tokenizer, model, family, templates)
        self._blank = blank_token_mask(tokenizer, model, self.stop_ids)

    # -- set-up checks --------------------------------------------------------
    def _label_tokens(self) -> tuple[list[tuple[int, ...]], dict[Label, list[int]]]:
        """Each label word's tokens (as answered) and each label's forced answer prefix."""
        seqs: list[tuple[int, ...]] = []
        forced: dict[Label, list[int]] = {}
        t = self.templates
        for label in ASSESSED_LABELS:
            word = tuple(self.family.answer_ids(self.tokenizer, t, t.labels[label]))
            full = self.family.answer_ids(self.tokenizer, t, t.labels[label] + t.separator.rstrip())
            if not word or not full:
                raise ValueError(f"the label word {t.labels[label]!r} tokenizes to nothing")
            # Where the tokenizer merges the word with the separator ("Good." as one
            # token), that merged token is what the model answers with.
            seqs.append(word if tuple(full[: len(word)]) == word else tuple(full[:1]))
            forced[label] = list(full)
        return seqs, forced

    # -- request-thread work ---------------------------------------------------
    def prepare(
        self, frames: np.ndarray, seconds_per_frame: float, prompt: str, dims: Sequence[Dimension]
    ) -> PreparedItem:
        """Preprocess frames and tokenize one question per dimension."""
        vision = self.family.prepare(frames, seconds_per_frame)
        rows = tuple(self._tokenize(self.templates.question(d, prompt), vision) for d in dims)
        return PreparedItem(vision, rows, tuple(dims))

    def _tokenize(self, question: str, vision: VisionInput) -> tuple[int, ...]:
        ids = self.family.render(self.tokenizer, self.templates, question, vision)
        placed = sum(1 for t in ids if t == self.video_token_id)
        if placed != vision.num_tokens:
            raise ValueError(
                f"the prompt holds {placed} video positions for a video of {vision.num_tokens} "
                "tokens; the chat template must render the video exactly once"
            )
        limit = self.max_length
        if limit is not None and len(ids) > limit:
            raise ValueError(
                f"the question is {len(ids)} tokens with the video, over the model's {limit}; "
                "use a shorter prompt or fewer frames"
            )
        return tuple(ids)

    # -- model-thread work -----------------------------------------------------
    @torch.inference_mode()
    def run(
        self,
        items: Sequence[PreparedItem],
        with_reasons: bool,
        check: Callable[[], None],
        force: Sequence[Label] | None = None,
    ) -> list[list[Answer]]:
        """Answer every question of every item; one list of answers per item.

        ``force`` (one label per question, in order) overrides the chosen labels:
        the reasons are then decoded after those labels (tests use it).
        """
        model, family = self.model, self.family
        device = model.device
        embeds_per_video = family.encode_videos(model, [it.vision for it in items])
        check()
        rows = [(k, row) for k, it in enumerate(items) for row in it.rows]
        width = max(len(r) for _, r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (_, row) in enumerate(rows):
            ids[b, width - len(row) :] = torch.tensor(row)
            mask[b, width - len(row) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        placed = ids == self.video_token_id
        embeds = family.embed(model, ids.masked_fill(placed, self.pad_id))
        video_rows = [embeds_per_video[k] for k, _ in rows]
        embeds = embeds.masked_scatter(placed.unsqueeze(-1), torch.cat(video_rows).to(embeds.dtype))
        positions = family.position_ids(model, ids, mask, [items[k].vision for k, _ in rows])
        logits, cache = family.decode(model, embeds, mask, positions, use_cache=with_reasons)
        probs = self._label_probabilities(logits, embeds, mask, positions)
        chosen = [ASSESSED_LABELS[int(np.argmax(p))] for p in probs]
        if force is not None:
            chosen = list(force)
        texts: list[str | None] = [None] * len(rows)
        if with_reasons:
            check()
            texts = self._decode_reasons(chosen, cache, mask, positions, check)
        answers: list[list[Answer]] = [[] for _ in items]
        for b, (k, _) in enumerate(rows):
            p = _rounded(probs[b])
            reason = None
            if texts[b] is not None:
                _, reason = self.templates.parse_answer(texts[b] or "")
            answers[k].append(Answer(p, chosen[b], reason, texts[b]))
        return answers

    def _label_probabilities(
        self, logits: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor, positions: Any
    ) -> np.ndarray:
        """(rows, 3) probabilities of the label words (see :func:`branch_probabilities`)."""
        return branch_probabilities(
            self.model, self.family, self.branches, 3, logits, embeds, mask, positions
        )

    def _decode_reasons(
        self,
        chosen: list[Label],
        cache: Any,
        mask: torch.Tensor,
        positions: torch.Tensor,
        check: Callable[[], None],
    ) -> list[str | None]:
        """Greedy decoding after each row's forced ``"<Label>."`` prefix."""
        model, family, device = self.model, self.family, self.model.device
        n = len(chosen)
        queues = [list(self.forced[lab]) for lab in chosen]
        out: list[list[int]] = [[] for _ in range(n)]
        reason_tokens = [0] * n
        has_text = [False] * n
        done = [False] * n
        next_ids = [q.pop(0) for q in queues]
        stop = torch.tensor(sorted(self.stop_ids), device=device)
        blank = self._blank.to(device)
        budget = max(len(q) for q in queues) + self.max_reason_tokens + 1
        for step in range(budget):
            for b in range(n):
                if not done[b]:
                    out[b].append(next_ids[b])
            step_ids = torch.tensor(
                [[t if not done[b] else self.pad_id] for b, t in enumerate(next_ids)], device=device
            )
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
            logits, cache = family.decode(
                model,
                family.embed(model, step_ids),
                mask,
                family.next_position_ids(positions, step),
                past_key_values=cache,
                use_cache=True,
            )
            logits = logits.float()
            for b in range(n):
                if done[b]:
                    continue
                if queues[b]:
                    next_ids[b] = queues[b].pop(0)
                    continue
                row = logits[b]
                if not has_text[b]:
                    # a reason must say something: no stop, no whitespace-only start
                    row = row.masked_fill(blank[: row.shape[0]], float("-inf"))
                    row[stop[stop < row.shape[0]]] = float("-inf")
                tok = int(torch.argmax(row))
                if tok in self.stop_ids or reason_tokens[b] >= self.max_reason_tokens:
                    done[b] = True
                    continue
                reason_tokens[b] += 1
                has_text[b] = has_text[b] or not bool(self._blank[tok])
                next_ids[b] = tok
            if all(done):
                break
            check()
        return [_clean(self.tokenizer.decode(t, skip_special_tokens=True)) for t in out]


def branch_probabilities(
    model: Any,
    family: Family,
    branches: Sequence[tuple[tuple[int, ...], dict[int, int]]],
    count: int,
    logits: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    positions: Any,
) -> np.ndarray:
    """(rows, count) probabilities of ``count`` answer words from the answer position's logits.

    ``branches`` is :func:`branch_points` of the words' tokens. At every point where the
    words part ways the next-token distribution is restricted to their next tokens; a
    word's probability is the product of its choices (normalised over the words). Words
    that differ in their first token need only ``logits``; each later branch point costs
    one forward of the rows with the shared tokens appended.
    """
    n = logits.shape[0]
    probs = torch.ones((n, count), dtype=torch.float64)
    for prefix, children in branches:
        if prefix:
            k = len(prefix)
            step = torch.tensor([list(prefix)] * n, device=embeds.device)
            ext_embeds = torch.cat([embeds, family.embed(model, step).to(embeds.dtype)], 1)
            ext_mask = torch.cat(
                [mask, torch.ones((n, k), dtype=mask.dtype, device=mask.device)], 1
            )
            ext_pos = torch.cat(
                [positions] + [family.next_position_ids(positions, i) for i in range(k)], -1
            )
            at, _ = family.decode(model, ext_embeds, ext_mask, ext_pos)
        else:
            at = logits
        tokens = sorted(set(children.values()))
        choice = torch.softmax(at[:, tokens].double(), dim=-1).cpu()
        for label_index, token in children.items():
            probs[:, label_index] *= choice[:, tokens.index(token)]
    return (probs / probs.sum(dim=1, keepdim=True)).numpy()


def branch_points(
    seqs: Sequence[tuple[int, ...]], texts: Sequence[str], kind: str, table: str
) -> list[tuple[tuple[int, ...], dict[int, int]]]:
    """(shared prefix, {index: its next token}) wherever the token sequences part ways.

    Only the sequences through that prefix take part; a prefix all of them share
    and continue alike is no choice (probability 1 under the restriction). A
    sequence that is a prefix of another cannot be told apart from it: refused,
    naming the two ``texts`` (``kind``: "label word", ...) and the template ``table``.
    """
    for i, x in enumerate(seqs):
        for j, y in enumerate(seqs):
            if i != j and y[: len(x)] == x:
                raise ValueError(
                    f"the {kind} {texts[i]!r} is a token prefix of {texts[j]!r} in this "
                    "tokenizer, so their probabilities cannot be told apart; change "
                    f"{table} in the template file"
                )
    points = []
    depth = max(len(s) for s in seqs)
    for d in range(depth):
        groups: dict[tuple[int, ...], dict[int, int]] = {}
        for i, s in enumerate(seqs):
            if len(s) > d:
                groups.setdefault(s[:d], {})[i] = s[d]
        for prefix, children in groups.items():
            if len(set(children.values())) > 1:
                points.append((prefix, children))
    return points


def stop_ids(tokenizer: Any, model: Any, family: Family, templates: Templates) -> set[int]:
    """Token ids that end an answer: the tokenizer's and the model's end tokens, ChatML's
    and the family's stop texts (when each is one token)."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    for tok in ("<|im_end|>", "<|endoftext|>", *family.stop_texts(templates)):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return {i for i in ids if i is not None}


def blank_token_mask(tokenizer: Any, model: Any, stops: set[int]) -> torch.Tensor:
    """True for tokens that decode to whitespace only (a reason needs more); stops excepted."""
    vocab = model.get_output_embeddings().weight.shape[0]
    known = min(vocab, len(tokenizer))
    mask = torch.ones(vocab, dtype=torch.bool)  # ids past the tokenizer decode to nothing
    pieces = tokenizer.batch_decode([[t] for t in range(known)], skip_special_tokens=True)
    mask[:known] = torch.tensor([not piece.strip() for piece in pieces], dtype=torch.bool)
    for tid in stops:
        if tid < vocab:
            mask[tid] = False  # stops are handled separately
    return mask


def _clean(text: str) -> str:
    """Drop control characters and the U+FFFD left by a multi-byte character cut short."""
    return "".join(ch for ch in text if ch == " " or (ch.isprintable() and ch != "\ufffd")).strip()


def _rounded(p: np.ndarray) -> LabelProbabilities:
    """Probabilities to 6 decimals (stable output), still summing to 1."""
    good, normal = round(float(p[0]), 6), round(float(p[1]), 6)
    bad = round(max(0.0, 1.0 - good - normal), 6)
    return LabelProbabilities(good=good, normal=normal, bad=bad)
