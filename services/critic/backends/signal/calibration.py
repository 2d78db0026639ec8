"""Calibrating the signal critic's ordinal models to human labels.

The defaults of :data:`.backend.DEFAULT_MODELS` are set by hand on injected
defects; people may weigh defects differently (a little noise may matter more to
them than a short flicker). Calibration fits, per assessed dimension, the
:class:`.backend.OrdinalModel`'s non-negative weight per evidence tag and its two
cut points by maximum likelihood of the ordinal logistic model on human labels
(good / normal / bad), with an L2 pull toward the defaults so a handful of labels
cannot send the weights wild. ``power`` and ``scale`` stay fixed: scaling every
weight by ``k**power`` and the cuts and scale by ``k`` gives the same
probabilities, so fitting all of them would be ill-posed.

Each rated video's evidence (rule badnesses, no weights involved) is measured
once; the fit then only re-weights those numbers, so it is fast and
deterministic (projected gradient descent with backtracking, numpy only).

The result is a JSON file the backend loads (``--calibration`` /
``LIFT_CRITIC_CALIBRATION``)::

    {"version": 1,
     "dimensions": {"video_fidelity": {"weights": {"noise": 2.1, ...},
                    "default_weight": 1.0, "power": 3.0,
                    "cut_normal": 0.9, "cut_bad": 1.7, "scale": 0.45}},
     "fitted_on": {"records": 40, "videos": 20, "sha256": "<of the ratings file>"}}
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lift.critique import Dimension, Label
from lift.hra.records import HraRecord, read_hra, resolve_video
from lift.services.critic.backends.signal.backend import DEFAULT_MODELS, OrdinalModel, SignalBackend
from lift.templates import Templates
from lift.uris import is_uri
from lift.video import VideoLimits, decode_video

FORMAT_VERSION = 1
MIN_LABELS = 4
"""Fewest human labels a dimension needs to be fitted (fewer: it keeps its defaults)."""
L2_PULL = 1.0
"""Strength of the pull toward the default model, in units of one record's log-likelihood."""
ITERATIONS = 400
_MIN_GAP = 0.05  # cut_bad - cut_normal at least this (the "normal" band never vanishes)
_LABEL_INDEX = {Label.GOOD: 0, Label.NORMAL: 1, Label.BAD: 2}

Evidence = dict[str, float]
"""One video's evidence on one dimension: tag -> badness (1 = the defect's threshold)."""


class CalibrationError(ValueError):
    """A ratings or calibration file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Calibration:
    """Fitted models per dimension, and the sha256 of the calibration file they came from."""

    models: dict[Dimension, OrdinalModel]
    sha256: str
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """Short name of this calibration for the model version (``cal-<8 hex>``)."""
        return f"cal-{self.sha256[:8]}"


@dataclass(frozen=True)
class Rated:
    """One human label together with its video's evidence on the rated dimension."""

    record: HraRecord
    evidence: Evidence


# -- the ratings -------------------------------------------------------------


def read_ratings(path: Path, templates: Templates) -> list[HraRecord]:
    """The records of an HRA file, refusing any file with a bad line or a missing video."""
    if not path.is_file():
        raise CalibrationError(f"ratings file not found: {path}")
    records, errors = read_hra(path, templates)
    if errors:
        missing = [e for e in errors if e.message.startswith("video file not found")]
        if missing and len(missing) == len(errors):
            names = ", ".join(e.message.split(": ", 1)[1] for e in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise CalibrationError(f"{path}: {len(missing)} videos missing: {names}{more}")
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise CalibrationError(f"{path}: {shown}{more}")
    return records


def measure_evidence(
    records: Sequence[HraRecord],
    hra_file: Path,
    backend: SignalBackend | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Rated]:
    """Each record with its video's evidence; every video is decoded and measured once."""
    backend = backend or SignalBackend()
    cache: dict[str, dict[Dimension, Evidence]] = {}
    out: list[Rated] = []
    for r in records:
        if r.dimension not in backend.assessed:
            continue
        where = resolve_video(hra_file, r.video)
        if where not in cache:
            if is_uri(where):
                raise CalibrationError(
                    f"line {r.line}: {r.video} is a URI; calibration reads local files only"
                )
            if progress is not None:
                progress(where)
            try:
                video = decode_video(
                    Path(where).read_bytes(),
                    VideoLimits(),
                    max_samples=backend.max_frames,
                    pixel_format="gray",
                )
            except Exception as exc:
                raise CalibrationError(
                    f"line {r.line}: cannot decode {where}: {getattr(exc, 'message', exc)}"
                ) from None
            per_dim: dict[Dimension, Evidence] = {d: {} for d in backend.assessed}
            if video.num_sampled >= 2:  # one frame: no motion, the backend leaves it unassessed
                for e in backend.evidence(video, lambda: None):
                    per_dim[e.dimension][e.tag] = float(e.badness)
            else:
                per_dim.pop(Dimension.MOTION_SMOOTHNESS, None)
            cache[where] = per_dim
        ev = cache[where].get(r.dimension)
        if ev is not None:
            out.append(Rated(r, ev))
    return out


# -- the model ---------------------------------------------------------------


def predict(model: OrdinalModel, evidence: Evidence) -> Label:
    """The label the model gives a video with this evidence (as the backend does)."""
    return model.probabilities(model.badness(evidence.items())).most_likely()


def accuracy(model: OrdinalModel, rated: Sequence[Rated]) -> float | None:
    """Fraction of human labels the model gives too (None without labels)."""
    if not rated:
        return None
    return sum(predict(model, r.evidence) is r.record.label for r in rated) / len(rated)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def fit(rated: Sequence[Rated], default: OrdinalModel, l2: float = L2_PULL) -> OrdinalModel:
    """Maximum-likelihood weights and cuts for one dimension's labels, pulled toward ``default``.

    Parameters: the weight of every tag the data shows (others keep the default's),
    ``cut_normal`` and ``cut_bad``; weights are kept >= 0 and the cuts ordered by
    projection after every step. Deterministic: fixed start, fixed steps.
    """
    tags = sorted({t for r in rated for t, b in r.evidence.items() if b > 0})
    p, s = default.power, default.scale
    b = np.array([[r.evidence.get(t, 0.0) ** p for t in tags] for r in rated], dtype=np.float64)
    b = b.reshape(len(rated), len(tags))
    y = np.array([_LABEL_INDEX[r.record.label] for r in rated])
    theta0 = np.array(
        [default.weights.get(t, default.default_weight) for t in tags]
        + [default.cut_normal, default.cut_bad],
        dtype=np.float64,
    )
    k = len(tags)
    n = len(rated)

    def loss(theta: np.ndarray) -> float:
        total = b @ theta[:k]
        z = np.where(total > 0, np.abs(total) ** (1.0 / p), 0.0)
        a1 = (z - theta[k]) / s  # P(worse than good) = sigmoid(a1)
        a2 = (z - theta[k + 1]) / s  # P(bad) = sigmoid(a2)
        # log P(normal) = log(sig(a1) - sig(a2)), computed stably.
        diff = np.clip(1.0 - np.exp(_log_sigmoid(a2) - _log_sigmoid(a1)), 1e-12, None)
        lp = np.where(
            y == 0,
            _log_sigmoid(-a1),
            np.where(y == 2, _log_sigmoid(a2), _log_sigmoid(a1) + np.log(diff)),
        )
        return float(-lp.mean() + l2 / n * np.sum((theta - theta0) ** 2))

    def project(theta: np.ndarray) -> np.ndarray:
        t = theta.copy()
        t[:k] = np.maximum(t[:k], 0.0)
        t[k] = max(t[k], 0.0)
        t[k + 1] = max(t[k + 1], t[k] + _MIN_GAP)
        return t

    def grad(theta: np.ndarray) -> np.ndarray:
        g = np.zeros_like(theta)
        h = 1e-6
        for i in range(theta.size):
            e = np.zeros_like(theta)
            e[i] = h
            g[i] = (loss(theta + e) - loss(theta - e)) / (2 * h)
        return g

    theta = project(theta0)
    cur = loss(theta)
    step = 1.0
    for _ in range(ITERATIONS):
        g = grad(theta)
        while step > 1e-10:
            cand = project(theta - step * g)
            new = loss(cand)
            if new < cur - 1e-12:
                theta, cur = cand, new
                step *= 1.5
                break
            step *= 0.5
        else:
            break
    weights = dict(default.weights)
    weights.update({t: round(float(theta[i]), 6) for i, t in enumerate(tags)})
    return OrdinalModel(
        weights=weights,
        default_weight=default.default_weight,
        power=p,
        cut_normal=round(float(theta[k]), 6),
        cut_bad=round(float(theta[k + 1]), 6),
        scale=s,
    )


@dataclass(frozen=True)
class DimensionResult:
    """What calibration did with one dimension."""

    dimension: Dimension
    train_labels: int
    eval_labels: int
    before: float | None
    after: float | None
    model: OrdinalModel | None
    note: str = ""


def calibrate(
    train: Sequence[Rated],
    held_out: Sequence[Rated],
    defaults: Mapping[Dimension, OrdinalModel] = DEFAULT_MODELS,
    min_labels: int = MIN_LABELS,
) -> list[DimensionResult]:
    """Fit every dimension with enough labels; agreement before/after on ``held_out``."""
    out: list[DimensionResult] = []
    for dim in Dimension:
        tr = [r for r in train if r.record.dimension == dim]
        ev = [r for r in held_out if r.record.dimension == dim]
        if dim not in defaults:
            n = sum(1 for r in train if r.record.dimension == dim)
            out.append(
                DimensionResult(dim, n, 0, None, None, None, "not assessed by the signal critic")
            )
            continue
        default = defaults[dim]
        if len(tr) < min_labels:
            out.append(
                DimensionResult(
                    dim,
                    len(tr),
                    len(ev),
                    accuracy(default, ev),
                    None,
                    None,
                    f"only {len(tr)} labels (need {min_labels}): kept the default model",
                )
            )
            continue
        model = fit(tr, default)
        out.append(
            DimensionResult(
                dim, len(tr), len(ev), accuracy(default, ev), accuracy(model, ev), model
            )
        )
    return out


# -- the file ----------------------------------------------------------------


def _model_dict(m: OrdinalModel) -> dict[str, Any]:
    return {
        "weights": dict(sorted(m.weights.items())),
        "default_weight": m.default_weight,
        "power": m.power,
        "cut_normal": m.cut_normal,
        "cut_bad": m.cut_bad,
        "scale": m.scale,
    }


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_calibration(
    path: Path, models: Mapping[Dimension, OrdinalModel], fitted_on: Mapping[str, Any]
) -> str:
    """Write the calibration file; return its sha256 (what the model version shows)."""
    doc = {
        "version": FORMAT_VERSION,
        "dimensions": {
            d.value: _model_dict(m) for d, m in sorted(models.items(), key=lambda x: x[0].value)
        },
        "fitted_on": dict(fitted_on),
    }
    text = json.dumps(doc, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _number(value: Any, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalibrationError(f"{where} must be a number (got {value!r})")
    x = float(value)
    if not math.isfinite(x):
        raise CalibrationError(f"{where} must be finite (got {value!r})")
    if x < 0 or (positive and x == 0):
        raise CalibrationError(f"{where} must be {'> 0' if positive else '>= 0'} (got {value!r})")
    return x


def load_calibration(path: Path) -> Calibration:
    """Read and strictly check a calibration file (every error names its field)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(
            f"cannot read calibration file {path}: {exc.strerror or exc}"
        ) from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"calibration file {path} is not valid JSON: {exc}") from None
    where = f"calibration file {path}"
    if not isinstance(doc, dict):
        raise CalibrationError(f"{where}: expected a JSON object")
    unknown = set(doc) - {"version", "dimensions", "fitted_on"}
    if unknown:
        raise CalibrationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if doc.get("version") != FORMAT_VERSION:
        raise CalibrationError(
            f"{where}: version must be {FORMAT_VERSION} (got {doc.get('version')!r})"
        )
    dims = doc.get("dimensions")
    if not isinstance(dims, dict) or not dims:
        raise CalibrationError(f"{where}: dimensions must be a non-empty object")
    assessed = {d.value: d for d in SignalBackend.assessed}
    models: dict[Dimension, OrdinalModel] = {}
    for name, spec in dims.items():
        if name not in assessed:
            raise CalibrationError(
                f"{where}: dimensions.{name} is not a dimension the signal critic assesses "
                f"({', '.join(assessed)})"
            )
        f = f"{where}: dimensions.{name}"
        if not isinstance(spec, dict):
            raise CalibrationError(f"{f} must be an object")
        keys = {"weights", "default_weight", "power", "cut_normal", "cut_bad", "scale"}
        if set(spec) != keys:
            missing, extra = keys - set(spec), set(spec) - keys
            raise CalibrationError(
                f"{f}: "
                + "; ".join(
                    s
                    for s in (
                        f"missing {', '.join(sorted(missing))}" if missing else "",
                        f"unknown {', '.join(sorted(extra))}" if extra else "",
                    )
                    if s
                )
            )
        w = spec["weights"]
        if not isinstance(w, dict):
            raise CalibrationError(f"{f}.weights must be an object of tag -> weight")
        weights = {str(t): _number(v, f"{f}.weights.{t}") for t, v in w.items()}
        cut_normal = _number(spec["cut_normal"], f"{f}.cut_normal")
        cut_bad = _number(spec["cut_bad"], f"{f}.cut_bad")
        if cut_normal >= cut_bad:
            raise CalibrationError(
                f"{f}.cut_normal ({cut_normal}) must be below cut_bad ({cut_bad})"
            )
        models[assessed[name]] = OrdinalModel(
            weights=weights,
            default_weight=_number(spec["default_weight"], f"{f}.default_weight"),
            power=_number(spec["power"], f"{f}.power", positive=True),
            cut_normal=cut_normal,
            cut_bad=cut_bad,
            scale=_number(spec["scale"], f"{f}.scale", positive=True),
        )
    fitted_on = doc.get("fitted_on", {})
    if not isinstance(fitted_on, dict):
        raise CalibrationError(f"{where}: fitted_on must be an object")
    return Calibration(models, hashlib.sha256(data).hexdigest(), fitted_on)
