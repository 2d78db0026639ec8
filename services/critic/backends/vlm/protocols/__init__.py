"""How a checkpoint's outputs become a critique: one module per protocol, chosen per checkpoint.

* ``labels``: LiFT's protocol ("<Good|Normal|Bad>. <reason>" per dimension; label
  probabilities from the logits): :class:`~lift.services.critic.backends.vlm.backend.VlmBackend`.
* ``reward_head``: VideoAlign's VideoReward (a linear head on reward tokens; VQ / MQ / TA):
  :class:`~lift.services.critic.backends.vlm.protocols.reward_head.RewardHeadBackend`; picked
  when the directory holds ``model_config.json`` and ``checkpoint-N/`` (or ``model.pth``).
* ``rating``: numeric ratings per dimension (VideoScore2, UnifiedReward pointwise: the
  expectation over the digit tokens' probabilities, a greedy rationale after the scores):
  :class:`~lift.services.critic.backends.vlm.protocols.rating.RatingBackend`; picked when
  the templates have a [rating] table (``--templates videoscore2``).

Each protocol is a critic backend (``prepare`` / ``judge_batch``, see
``backends/base.py``) built from the same :class:`VlmOptions`. ``auto`` picks the
protocol the checkpoint's layout says (:func:`detect`); a setting can name one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lift.services.critic.backends.vlm.backend import VlmBackend, VlmOptions


def _labels(options: VlmOptions) -> Any:
    return VlmBackend(options)


def _reward_head(options: VlmOptions) -> Any:
    from lift.services.critic.backends.vlm.protocols.reward_head import RewardHeadBackend

    return RewardHeadBackend(options)


def _rating(options: VlmOptions) -> Any:
    from lift.services.critic.backends.vlm.protocols.rating import rating_backend

    return rating_backend(options)


PROTOCOLS: dict[str, Callable[[VlmOptions], Any]] = {
    "labels": _labels,
    "reward_head": _reward_head,
    "rating": _rating,
}
"""Protocol name -> backend factory (factories import their module lazily)."""


def detect(model: Path, templates: str | Path | None = None) -> str:
    """The protocol a checkpoint directory's layout implies (``labels`` unless it says otherwise).

    Templates with a [rating] table (``videoscore2``, ``unifiedreward``) mean ``rating``.
    """
    from lift.services.critic.backends.vlm.protocols.reward_head import is_reward_head_layout

    if is_reward_head_layout(Path(model)):  # VideoAlign: model_config.json + checkpoint-N/
        return "reward_head"
    if templates is not None and str(templates) and _rating_templates(templates):
        return "rating"
    return "labels"


def _rating_templates(templates: str | Path) -> bool:
    from lift.templates import load_templates

    return load_templates(templates).rating is not None


def create(protocol: str, options: VlmOptions) -> Any:
    """The backend for ``protocol`` (``auto``: detected from the checkpoint)."""
    name = detect(options.model, options.templates) if protocol == "auto" else protocol
    try:
        factory = PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"protocol {name!r} is not known; choose auto or one of {', '.join(sorted(PROTOCOLS))}"
        ) from None
    if name == "labels" and options.templates is not None and _rating_templates(options.templates):
        raise ValueError(
            f"the templates {options.templates} are a rating template ([rating] table): serve "
            "them with the rating protocol (--protocol rating or auto), not labels"
        )
    return factory(options)


__all__ = ["PROTOCOLS", "create", "detect"]
