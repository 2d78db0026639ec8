"""Label probabilities and reasons from a video VLM, batched, deterministic.

For a batch of videos with three questions each (one per dimension):

1. one vision pass over all videos (the questions of a video share its encoding);
2. one text forward over all questions, left-padded: the next-token logits at
   the answer position, restricted to the three label tokens and soft-maxed,
   are the label probabilities (``Score`` stops here);
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
        self.video_token_id = self._single_token(family.video_token)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        self.label_ids, self.forced = self._label_tokens()
        self.stop_ids = self._stop_ids()
        self._blank = self._blank_token_mask()

    # -- set-up checks --------------------------------------------------------
    def _single_token(self, token: str) -> int:
        ids = self.tokenizer.convert_tokens_to_ids([token])
        if not ids or ids[0] is None or ids[0] == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {token!r} token; is this a video VLM?")
        return int(ids[0])

    def _label_tokens(self) -> tuple[list[int], dict[Label, list[int]]]:
        """First token of each label (the restriction) and each label's forced prefix."""
        forced: dict[Label, list[int]] = {}
        for label in ASSESSED_LABELS:
            text = self.templates.labels[label] + self.templates.separator.rstrip()
            forced[label] = list(self.tokenizer.encode(text, add_special_tokens=False))
        firsts = [forced[lab][0] for lab in ASSESSED_LABELS]
        if len(set(firsts)) != 3:
            words = [self.templates.labels[lab] for lab in ASSESSED_LABELS]
            raise ValueError(
                f"the label words {words} do not start with three different tokens in this "
                "tokenizer; change [labels] in the template file"
            )
        return firsts, forced

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos])
        for tok in ("<|im_end|>", "<|endoftext|>"):
            tid = self.tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return {i for i in ids if i is not None}

    def _blank_token_mask(self) -> torch.Tensor:
        """True for tokens that decode to whitespace only (a reason needs more)."""
        vocab = self.model.get_output_embeddings().weight.shape[0]
        known = min(vocab, len(self.tokenizer))
        mask = torch.ones(vocab, dtype=torch.bool)  # ids past the tokenizer decode to nothing
        pieces = self.tokenizer.batch_decode([[t] for t in range(known)], skip_special_tokens=True)
        mask[:known] = torch.tensor([not piece.strip() for piece in pieces], dtype=torch.bool)
        for tid in self.stop_ids:
            if tid < vocab:
                mask[tid] = False  # stops are handled separately
        return mask

    # -- request-thread work ---------------------------------------------------
    def prepare(
        self, frames: np.ndarray, seconds_per_frame: float, prompt: str, dims: Sequence[Dimension]
    ) -> PreparedItem:
        """Preprocess frames and tokenize one question per dimension."""
        vision = self.family.prepare(frames, seconds_per_frame)
        rows = tuple(self._tokenize(self.templates.question(d, prompt), vision) for d in dims)
        return PreparedItem(vision, rows, tuple(dims))

    def _tokenize(self, question: str, vision: VisionInput) -> tuple[int, ...]:
        messages: list[dict[str, Any]] = []
        if self.templates.system:
            messages.append({"role": "system", "content": self.templates.system})
        messages.append(
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}
        )
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        where = [i for i, t in enumerate(ids) if t == self.video_token_id]
        if len(where) != 1:
            raise ValueError(
                f"the chat template rendered {len(where)} video placeholders for one video; "
                "it must render exactly one"
            )
        i = where[0]
        return tuple(ids[:i] + [self.video_token_id] * vision.num_tokens + ids[i + 1 :])

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
        embeds = family.embed(model, ids)
        video_rows = [embeds_per_video[k] for k, _ in rows]
        where = (ids == self.video_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(where, torch.cat(video_rows).to(embeds.dtype))
        positions = family.position_ids(model, ids, mask, [items[k].vision for k, _ in rows])
        logits, cache = family.decode(model, embeds, mask, positions, use_cache=with_reasons)
        restricted = logits[:, self.label_ids].float()
        probs = torch.softmax(restricted, dim=-1).cpu().numpy().astype(np.float64)
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


def _clean(text: str) -> str:
    """Drop control characters and the U+FFFD left by a multi-byte character cut short."""
    return "".join(ch for ch in text if ch == " " or (ch.isprintable() and ch != "\ufffd")).strip()


def _rounded(p: np.ndarray) -> LabelProbabilities:
    """Probabilities to 6 decimals (stable output), still summing to 1."""
    good, normal = round(float(p[0]), 6), round(float(p[1]), 6)
    bad = round(max(0.0, 1.0 - good - normal), 6)
    return LabelProbabilities(good=good, normal=normal, bad=bad)
