"""Agreement between a critic and human *preferences* (VideoAlign's pairwise CSV format).

The file is VideoAlign's (KwaiVGI/VideoAlign, ``datasets/train/README.md``, and the
VideoGen-RewardBench CSV): a header with ``path_A``, ``path_B``, ``prompt`` and one column
per rated dimension, ``VQ`` (visual quality), ``MQ`` (motion quality), ``TA`` (text
alignment) and optionally ``Overall``, each ``A``, ``B`` or ``same`` (a tie); an empty cell
means that dimension was not rated for the pair. Other columns (``fps_A``,
``num_frames_A``, model names, ...) are ignored. Paths are relative to the CSV's
directory unless absolute or a URI.

Each distinct (video, prompt) is scored once. The critic's preference on a dimension is
``m = score(A) - score(B)`` with the dimension's score (VQ -> ``video_fidelity``, MQ ->
``motion_smoothness``, TA -> ``semantic_consistency``) and, for Overall, the critique's
reward. Human labels are ``h = +1`` (A), ``-1`` (B), ``0`` (same). Two accuracies, as the
VideoAlign paper reports them (its ``calc_accuracy.py``):

* **w/o ties**: human ties are left out; a pair counts as right when ``m`` has the
  human's sign, and a model tie (``m == 0``) counts as wrong: ``C / (C + D + Tm)``;
* **w/ ties** (tie calibration, Deutsch et al. 2023, arXiv:2305.14324): every pair
  counts; the model "ties" when ``|m| <= ε``, and ε is the one of the observed ``|m|``
  values that maximises the accuracy ``(C + both tie) / all``. Pairs with equal ``|m|``
  tie together (VideoAlign's incremental sweep can also count a state where only some of
  them tie; with distinct ``|m|`` the two agree).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lift.critique import Critique, Dimension
from lift.uris import is_uri

PREF_COLUMNS: dict[str, Dimension | None] = {
    "VQ": Dimension.VIDEO_FIDELITY,
    "MQ": Dimension.MOTION_SMOOTHNESS,
    "TA": Dimension.SEMANTIC_CONSISTENCY,
    "Overall": None,
}
"""Preference column -> the critic's dimension compared (None: the critique's reward)."""
LABELS = {"A": 1, "B": -1, "same": 0}
REQUIRED = ("path_A", "path_B", "prompt")

JudgeFn = Callable[[Sequence[tuple[str, str]]], Sequence[Critique | str]]
"""(video, prompt) pairs -> a critique or an error message per pair."""


@dataclass(frozen=True)
class PrefPair:
    """One row: two videos, one prompt, the human preference per rated column."""

    line: int
    video_a: str
    video_b: str
    prompt: str
    labels: dict[str, int]
    """Column ("VQ", ...) -> +1 (A), -1 (B), 0 (same); only rated columns."""


def resolve(csv_file: Path, video: str) -> str:
    """A URI as written, else an absolute path (relative ones from the CSV's directory)."""
    if is_uri(video):
        return video
    p = Path(video)
    return str(p if p.is_absolute() else (csv_file.parent / p).absolute())


def read_prefs(path: Path, check_videos: bool = True) -> tuple[list[PrefPair], list[str]]:
    """The pairs of a preference CSV, and an error per bad row (``"line N: ..."``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: not readable as UTF-8 text: {exc}"]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        return [], [f"line {reader.line_num}: not a readable CSV row: {exc}"]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return [], [f"line 1: the header lacks {', '.join(missing)} (VideoAlign's format)"]
    columns = [c for c in PREF_COLUMNS if c in header]
    if not columns:
        return [], [f"line 1: the header has none of {', '.join(PREF_COLUMNS)}"]
    pairs: list[PrefPair] = []
    errors: list[str] = []
    for row in _rows(reader, errors):
        line = reader.line_num
        bad = []
        values = {c: (row.get(c) or "").strip() for c in (*REQUIRED, *columns)}
        for c in REQUIRED:
            if not values[c]:
                bad.append(f"{c} is empty")
        labels: dict[str, int] = {}
        for c in columns:
            v = values[c]
            if not v:
                continue
            if v not in LABELS:
                bad.append(f"{c} is {v!r}; write A, B or same")
            else:
                labels[c] = LABELS[v]
        if check_videos:
            for c in ("path_A", "path_B"):
                v = values[c]
                if v and not is_uri(v) and not Path(resolve(path, v)).is_file():
                    bad.append(f"{c} {v!r}: no such file")
        if not bad and not labels:
            bad.append(f"no preference given ({', '.join(columns)} all empty)")
        if bad:
            errors.append(f"line {line}: " + "; ".join(bad))
            continue
        pairs.append(PrefPair(line, values["path_A"], values["path_B"], values["prompt"], labels))
    return pairs, errors


def _rows(reader: csv.DictReader[str], errors: list[str]) -> Iterator[dict[str, str]]:
    """The reader's rows; a row the csv module cannot read ends the file with an error.

    (A field over the csv module's size limit, e.g. a quote left open that swallows the
    rest of the file, would otherwise raise out of the command as a traceback.)
    """
    try:
        yield from reader
    except csv.Error as exc:
        errors.append(
            f"line {reader.line_num + 1}: not a readable CSV row ({exc}); "
            "look for an unclosed quote from there on"
        )


@dataclass
class PrefCounts:
    """Human preference vs the critic's score difference on one column."""

    column: str
    pairs: list[tuple[int, float]] = field(default_factory=list)
    """(h, m) per compared pair."""
    unassessed: int = 0
    """Pairs the critic gave no score for on this column."""

    @property
    def compared(self) -> int:
        return len(self.pairs)

    def stats(self, epsilon: float) -> dict[str, int]:
        """C, D, Th (human ties only), Tm (model ties only), Thm (both) at threshold ε."""
        s = {"C": 0, "D": 0, "Th": 0, "Tm": 0, "Thm": 0}
        for h, m in self.pairs:
            tie = abs(m) <= epsilon
            if h == 0:
                s["Thm" if tie else "Th"] += 1
            elif tie:
                s["Tm"] += 1
            else:
                s["C" if h * m > 0 else "D"] += 1
        return s

    @property
    def accuracy_without_ties(self) -> float | None:
        """C / (C + D + Tm) over the pairs humans did not tie (model ties are wrong)."""
        s = self.stats(0.0)
        n = s["C"] + s["D"] + s["Tm"]
        return None if n == 0 else s["C"] / n

    @property
    def accuracy_with_ties(self) -> float | None:
        """Tie-calibrated accuracy: the best ``(C + Thm) / N`` over ε in 0 and the observed ``|m|``."""
        if not self.pairs:
            return None
        n = len(self.pairs)
        # Sweep ε upward: at each distinct |m|, every pair with that |m| becomes a model tie.
        ordered = sorted(self.pairs, key=lambda p: abs(p[1]))
        s = self.stats(-1.0)  # no model ties yet
        # ε = 0 is a candidate too: with no |m| exactly 0 it makes no model tie at all
        # (the sweep below only visits ε at which some pair becomes a tie).
        best = (s["C"] + s["Thm"]) / n if abs(ordered[0][1]) > 0 else -1.0
        i = 0
        while i < n:
            eps = abs(ordered[i][1])
            while i < n and abs(ordered[i][1]) == eps:
                h, m = ordered[i]
                if h == 0:
                    s["Th"] -= 1
                    s["Thm"] += 1
                else:
                    s["C" if h * m > 0 else "D"] -= 1
                    s["Tm"] += 1
                i += 1
            best = max(best, (s["C"] + s["Thm"]) / n)
        return best


@dataclass
class PrefReport:
    """One critic against one preference file."""

    critic: str
    columns: dict[str, PrefCounts]
    errors: list[tuple[PrefPair, str]]

    def average(self, with_ties: bool) -> float | None:
        """Mean accuracy over VQ, MQ, TA (the columns compared; Overall not included)."""
        accs = [
            c.accuracy_with_ties if with_ties else c.accuracy_without_ties
            for name, c in self.columns.items()
            if name != "Overall"
        ]
        got = [a for a in accs if a is not None]
        return sum(got) / len(got) if got else None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "critic": self.critic,
            "average": {
                "with_ties": self.average(True),
                "without_ties": self.average(False),
            },
            "columns": {
                name: {
                    "dimension": (d.value if (d := PREF_COLUMNS[name]) is not None else "reward"),
                    "with_ties": c.accuracy_with_ties,
                    "without_ties": c.accuracy_without_ties,
                    "compared": c.compared,
                    "unassessed": c.unassessed,
                    "counts": c.stats(0.0),
                }
                for name, c in self.columns.items()
            },
            "errors": [
                {"line": p.line, "video_a": p.video_a, "video_b": p.video_b, "error": e}
                for p, e in self.errors
            ],
        }


def _value(critique: Critique, column: str) -> float | None:
    dim = PREF_COLUMNS[column]
    if dim is None:
        return critique.reward
    return critique.dimension(dim).score


def preference_agreement(
    critic: str, csv_file: Path, pairs: Sequence[PrefPair], judge: JudgeFn
) -> PrefReport:
    """Score every distinct (video, prompt) once; compare score differences with the humans."""
    keys: dict[tuple[str, str], int] = {}
    for p in pairs:
        for v in (p.video_a, p.video_b):
            keys.setdefault((resolve(csv_file, v), p.prompt), len(keys))
    order = list(keys)
    results = judge(order)
    columns = sorted({c for p in pairs for c in p.labels}, key=list(PREF_COLUMNS).index)
    report = PrefReport(critic, {c: PrefCounts(c) for c in columns}, [])
    for p in pairs:
        a = results[keys[(resolve(csv_file, p.video_a), p.prompt)]]
        b = results[keys[(resolve(csv_file, p.video_b), p.prompt)]]
        if isinstance(a, str) or isinstance(b, str):
            report.errors.append((p, a if isinstance(a, str) else str(b)))
            continue
        for column, h in p.labels.items():
            va, vb = _value(a, column), _value(b, column)
            if va is None or vb is None:
                report.columns[column].unassessed += 1
            else:
                report.columns[column].pairs.append((h, round(va - vb, 9)))
    return report
