"""Chance-corrected agreement between human raters: Cohen's κ (two raters), Fleiss' κ (many).

Pure functions over labels, no service types, so the feedback service's overview, the
export summary and the tests compute κ the same way. κ is ``None`` where it is undefined:
no items, or chance agreement of 1 (every rating is one label, so there is nothing to
agree beyond chance).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def cohen_kappa(a: Sequence[T], b: Sequence[T]) -> float | None:
    """Cohen's κ of two raters who labelled the same items (``a[i]``, ``b[i]``: item i).

    κ = (p_o - p_e) / (1 - p_e), p_o the share of items both gave the same label,
    p_e = Σ_k p_a(k) · p_b(k) the agreement two raters with these label frequencies
    would reach by chance (Cohen 1960).
    """
    if len(a) != len(b):
        raise ValueError(f"both raters must label the same items ({len(a)} vs {len(b)} labels)")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    fa, fb = Counter(a), Counter(b)
    expected = sum(fa[k] * fb[k] for k in fa) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' κ of a table of counts: ``table[i][j]`` raters put item i in category j.

    Fleiss (1971): P_i = (Σ_j n_ij² - n_i) / (n_i (n_i - 1)) is the agreement on item i,
    P̄ their mean, p_j = Σ_i n_ij / Σ_i n_i the share of category j, P̄_e = Σ_j p_j²,
    κ = (P̄ - P̄_e) / (1 - P̄_e). Items may have different numbers of raters (each
    needs at least 2; items with fewer are left out); with the same number on every
    item this is exactly Fleiss' statistic.
    """
    rows = [list(r) for r in table if sum(r) >= 2]
    if not rows:
        return None
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError("every row of the table must have one count per category")
    if any(c < 0 for r in rows for c in r):
        raise ValueError("counts must not be negative")
    agreement = []
    for r in rows:
        n = sum(r)
        agreement.append((sum(c * c for c in r) - n) / (n * (n - 1)))
    p_bar = sum(agreement) / len(rows)
    total = sum(sum(r) for r in rows)
    p_e = sum((sum(r[j] for r in rows) / total) ** 2 for j in range(width))
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def fleiss_from_labels(items: Sequence[Sequence[T]], categories: Sequence[T]) -> float | None:
    """Fleiss' κ of the labels each item got (``items[i]``: every rater's label of item i)."""
    index = {c: j for j, c in enumerate(categories)}
    table = []
    for labels in items:
        row = [0] * len(categories)
        for lab in labels:
            if lab not in index:
                raise ValueError(f"label {lab!r} is not one of the categories {list(categories)}")
            row[index[lab]] += 1
        table.append(row)
    return fleiss_kappa(table)
