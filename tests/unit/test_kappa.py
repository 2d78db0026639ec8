"""Cohen's and Fleiss' κ against textbook values worked by hand."""

from __future__ import annotations

import pytest

from lift.hra.kappa import cohen_kappa, fleiss_from_labels, fleiss_kappa

# The worked example of Fleiss' κ (Wikipedia, "Fleiss' kappa"): 10 subjects, 14 raters each,
# 5 categories. By hand: p_j = (20, 28, 39, 21, 32) / 140 = .143 .200 .279 .150 .229,
# P̄_e = Σ p_j² = 0.2128; P_i = (Σ n_ij² - 14) / (14·13), P̄ = 0.3780; κ = 0.2099.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_textbook_table() -> None:
    p_e = sum((x / 140) ** 2 for x in (20, 28, 39, 21, 32))
    p_bar = sum((sum(c * c for c in row) - 14) / (14 * 13) for row in FLEISS_TABLE) / 10
    assert p_e == pytest.approx(0.2128, abs=1e-4)
    assert p_bar == pytest.approx(0.3780, abs=1e-4)
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.20993, abs=1e-5)


def test_cohen_two_by_two() -> None:
    # Cohen's κ worked example: 50 items; both yes 20, A yes B no 5, A no B yes 10, both no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50: p_e = .5·.6 + .5·.4 = 0.5; κ = 0.2/0.5 = 0.4.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(b, a) == pytest.approx(0.4)


def test_perfect_and_undefined() -> None:
    assert cohen_kappa(["good", "bad", "normal"], ["good", "bad", "normal"]) == pytest.approx(1.0)
    assert cohen_kappa(["good", "good"], ["good", "good"]) is None  # chance agreement is 1
    assert cohen_kappa([], []) is None
    assert fleiss_kappa([[2, 0], [2, 0]]) is None
    assert fleiss_kappa([[1, 0]]) is None  # one rating agrees with nobody
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["good"], [])


def test_two_raters_fleiss_equals_cohen_with_equal_shares() -> None:
    # Two raters: Fleiss' κ is Scott's π (pooled label shares); it equals Cohen's κ when
    # both raters use each label equally often.
    a = ["good", "good", "bad", "normal", "bad", "good"]
    b = ["good", "bad", "good", "normal", "bad", "good"]  # same frequencies as a
    items = list(zip(a, b, strict=True))
    fk = fleiss_from_labels(items, ["good", "normal", "bad"])
    ck = cohen_kappa(a, b)
    assert fk is not None and ck is not None
    # p_o = 4/6; pooled shares good 6/12, normal 2/12, bad 4/12: p_e = (36+4+16)/144.
    p_e = 56 / 144
    assert fk == pytest.approx((4 / 6 - p_e) / (1 - p_e))
    assert ck == pytest.approx((4 / 6 - p_e) / (1 - p_e))


def test_fleiss_unequal_rater_counts_skips_single_ratings() -> None:
    with_single = [[2, 0, 0], [0, 2, 0], [1, 0, 0]]
    assert fleiss_kappa(with_single) == fleiss_kappa([[2, 0, 0], [0, 2, 0]])
    with pytest.raises(ValueError, match="not one of"):
        fleiss_from_labels([["good", "great"]], ["good", "normal", "bad"])
