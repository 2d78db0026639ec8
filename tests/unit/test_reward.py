"""Eq. 2, written once: expected reward per dimension, mean over judged dimensions."""

from __future__ import annotations

import pytest

from lift.critique import Dimension, DimensionVerdict, Label, LabelProbabilities
from lift.reward import (
    DEFAULT_REWARD_MAP,
    RewardMap,
    check_reward_map,
    dimension_reward,
    labels_reward,
    rewards_by_dimension,
    video_reward,
)


def test_the_default_map_is_the_papers() -> None:
    assert DEFAULT_REWARD_MAP.as_dict() == {"good": 0.9, "normal": 0.2, "bad": 0.05}
    assert RewardMap() == DEFAULT_REWARD_MAP


def test_expected_reward_weights_each_label_by_its_probability() -> None:
    probs = LabelProbabilities(0.5, 0.3, 0.2)
    assert DEFAULT_REWARD_MAP.expected(probs) == pytest.approx(0.5 * 0.9 + 0.3 * 0.2 + 0.2 * 0.05)


def test_video_reward_is_the_mean_over_judged_dimensions() -> None:
    dims = (
        DimensionVerdict.assessed(Dimension.MOTION_SMOOTHNESS, LabelProbabilities(1, 0, 0)),
        DimensionVerdict.assessed(Dimension.VIDEO_FIDELITY, LabelProbabilities(0, 0.5, 0.5)),
        DimensionVerdict.unassessed(Dimension.SEMANTIC_CONSISTENCY, "no model"),
    )
    per_dim = rewards_by_dimension(dims, DEFAULT_REWARD_MAP)
    assert per_dim == pytest.approx({"motion_smoothness": 0.9, "video_fidelity": 0.125})
    assert video_reward(dims, DEFAULT_REWARD_MAP) == pytest.approx((0.9 + 0.125) / 2)


def test_no_judged_dimension_gives_no_reward() -> None:
    dims = (DimensionVerdict.unassessed(Dimension.VIDEO_FIDELITY, "n/a"),)
    assert video_reward(dims, DEFAULT_REWARD_MAP) is None
    assert labels_reward({"video_fidelity": "unassessed"}, DEFAULT_REWARD_MAP) is None


def test_a_label_without_probabilities_counts_as_certain() -> None:
    verdict = DimensionVerdict(Dimension.VIDEO_FIDELITY, Label.NORMAL)
    assert dimension_reward(verdict, DEFAULT_REWARD_MAP) == 0.2
    assert labels_reward(
        {"video_fidelity": "good", "motion_smoothness": Label.BAD}, DEFAULT_REWARD_MAP
    ) == pytest.approx((0.9 + 0.05) / 2)


def test_labels_reward_refuses_an_unknown_label() -> None:
    with pytest.raises(ValueError):
        labels_reward({"video_fidelity": "great"}, DEFAULT_REWARD_MAP)


@pytest.mark.parametrize(
    ("good", "normal", "bad"),
    [(0.1, 0.5, 0.0), (0.9, 0.2, 0.3), (1.5, 0.2, 0.05), (0.9, 0.2, -0.1), (float("nan"), 0, 0)],
)
def test_a_map_out_of_range_or_order_is_refused(good: float, normal: float, bad: float) -> None:
    with pytest.raises(ValueError):
        check_reward_map(good, normal, bad)
    with pytest.raises(ValueError):
        RewardMap(good, normal, bad)


def test_critic_settings_and_run_config_default_to_the_one_map() -> None:
    from lift.services.critic.settings import CriticSettings
    from lift.services.trainer.config import RewardMapConfig

    assert CriticSettings().reward_map == DEFAULT_REWARD_MAP
    assert RewardMapConfig().reward_map() == DEFAULT_REWARD_MAP
    with pytest.raises(ValueError, match="good >= normal >= bad"):
        CriticSettings(reward_good=0.1, reward_normal=0.5)
