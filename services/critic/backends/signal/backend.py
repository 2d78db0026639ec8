"""The ``signal`` backend: pixel statistics -> evidence and findings -> labels with probabilities.

How a dimension's label and score come about: every rule of the dimension
(:mod:`.motion`, :mod:`.fidelity`) gives a continuous badness ``b >= 0`` of its
defect (0 none, 1 at the threshold where the defect is reported). An ordinal
logistic model per dimension (:class:`OrdinalModel`) combines them as a
weighted p-norm,

    z = (sum over rules of weight * b ** power) ** (1 / power)      (power 3)

which follows the worst defect (one defect at its threshold gives z = 1, one
twice as strong z = 2) while many small sub-threshold readings do not add up to
a defect (six readings of 0.3 give z = 0.55), and turns ``z`` into label
probabilities

    P(worse than good) = sigmoid((z - cut_normal) / scale)
    P(bad)             = sigmoid((z - cut_bad) / scale)

The label is the most probable one; the score is p_good + 0.5 p_normal, a
strictly decreasing function of ``z``: it keeps its resolution among clips that
are all "good" and falls further as any defect grows. The defaults are set by
hand on injected defects (``benchmarks.critic_signal_real``), not fitted to
human ratings; ``lift critic calibrate`` (:mod:`.calibration`) fits them to a
rated set, and ``SignalBackend(models=...)`` takes the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lift.critique import (
    Dimension,
    DimensionVerdict,
    Issue,
    Label,
    LabelProbabilities,
    ModelInfo,
)
from lift.services.critic.backends.base import ONE_FRAME_REASON, Judgement, one_frame
from lift.services.critic.backends.signal.detect import Evidence, Finding
from lift.services.critic.backends.signal.fidelity import FidelityRules, FidelityThresholds
from lift.services.critic.backends.signal.measure import measure
from lift.services.critic.backends.signal.motion import MotionRules, MotionThresholds
from lift.video import DecodedVideo

VERSION = "2.0"
NEEDS_VLM = (
    "Not assessed: comparing the video with the prompt needs a vision-language backend "
    "(vlm or composite); the signal backend measures pixels only."
)
MAX_FRAMES = 256
"""Most frames analysed: every frame of a clip up to 10 s at 25 fps (decoded frames are held in
memory: 256 grey 1080p frames take 530 MB).
A repeated or dropped frame or a cut lives in one frame, so frame timing is judged on
consecutive frames; longer clips are sampled evenly in time (their uneven steps are
read from the timestamps). Picture quality is measured on at most
:data:`.measure.QUALITY_FRAMES` of them, which keeps a critique near decoding speed."""
_CLEAN_REASON = {
    Dimension.MOTION_SMOOTHNESS: "Motion is continuous: no frozen frames, stutter, judder or cuts "
    "found in {n} analysed frames (dynamic degree {dyn:.2f}).",
    Dimension.VIDEO_FIDELITY: "The picture is clean and stable: no flicker, blur, noise, "
    "clipped exposure or compression blocks found in {n} analysed frames.",
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class OrdinalModel:
    """One dimension's ordinal logistic model over its rules' evidence (see the module doc)."""

    weights: Mapping[str, float] = field(default_factory=dict)
    """Weight per evidence tag; a tag not named weighs ``default_weight``."""
    default_weight: float = 1.0
    power: float = 3.0
    cut_normal: float = 1.0
    cut_bad: float = 2.0
    scale: float = 0.45

    def badness(self, readings: Iterable[tuple[str, float]]) -> float:
        """The combined badness ``z`` of a dimension's (tag, b) readings (a weighted p-norm)."""
        total = sum(self.weights.get(t, self.default_weight) * b**self.power for t, b in readings)
        return float(total ** (1.0 / self.power)) if total > 0 else 0.0

    def probabilities(self, z: float) -> LabelProbabilities:
        """Label probabilities for a summed badness ``z``."""
        worse = _sigmoid((z - self.cut_normal) / self.scale)
        bad = _sigmoid((z - self.cut_bad) / self.scale)
        return LabelProbabilities(good=1.0 - worse, normal=worse - bad, bad=bad)


DEFAULT_MODELS: dict[Dimension, OrdinalModel] = {
    # A cut found at all is a defect of a generated clip (one shot was asked for):
    # weight 3 makes one cut at its threshold z = 1.44, "normal".
    Dimension.MOTION_SMOOTHNESS: OrdinalModel(weights={"abrupt_cut": 3.0}),
    Dimension.VIDEO_FIDELITY: OrdinalModel(),
}


class SignalBackend:
    """Deterministic, weight-free critic of motion smoothness and video fidelity."""

    assessed: tuple[Dimension, ...] = (Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY)
    pixel_format = "gray"
    batched = False

    def __init__(
        self,
        motion: MotionThresholds | None = None,
        fidelity: FidelityThresholds | None = None,
        models: Mapping[Dimension, OrdinalModel] | None = None,
        max_frames: int = MAX_FRAMES,
        calibration: str | None = None,
    ) -> None:
        """``calibration``: a short name of the calibration ``models`` came from (the
        model version shows it, so rewards from different calibrations stay apart)."""
        self.motion = motion or MotionThresholds()
        self.fidelity = fidelity or FidelityThresholds()
        self.models = {**DEFAULT_MODELS, **(models or {})}
        self.max_frames = max_frames
        version = f"{VERSION}+{calibration}" if calibration else VERSION
        self.model = ModelInfo(backend="signal", name="lift-signal", version=version)

    def _rules(
        self, video: DecodedVideo, check: Callable[[], None]
    ) -> tuple[MotionRules, FidelityRules]:
        """Measure the frames and apply every rule (motion first: fidelity skips its pairs)."""
        m = measure(video.frames, video.timestamps, should_stop=check)
        motion = MotionRules(m, th=self.motion).run()
        fidelity = FidelityRules(m, excluded=motion.excluded.copy(), th=self.fidelity).run()
        return motion, fidelity

    def evidence(self, video: DecodedVideo, check: Callable[[], None]) -> list[Evidence]:
        """Every rule's badness on this video, before any weighting (what calibration fits on)."""
        motion, fidelity = self._rules(video, check)
        return motion.evidence + fidelity.evidence

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> Judgement:
        """Measure the frames, apply the rules, and give a verdict per dimension."""
        motion, fidelity = self._rules(video, check)
        findings = motion.findings + fidelity.findings
        evidence = motion.evidence + fidelity.evidence
        still = one_frame(video)
        verdicts = [DimensionVerdict.unassessed(Dimension.SEMANTIC_CONSISTENCY, NEEDS_VLM)]
        for dim in self.assessed:
            if still and dim == Dimension.MOTION_SMOOTHNESS:
                # One frame has no motion: no score (it would reward still frames).
                verdicts.append(DimensionVerdict.unassessed(dim, ONE_FRAME_REASON))
                continue
            verdicts.append(
                self._verdict(
                    dim,
                    [f for f in findings if f.dimension == dim],
                    [e for e in evidence if e.dimension == dim],
                    video.num_sampled,
                    motion.dynamic_degree,
                )
            )
        dynamic = None if still else motion.dynamic_degree
        return Judgement(dimensions=tuple(verdicts), dynamic_degree=dynamic)

    def judge_batch(
        self, prepared: Sequence[Judgement], with_reasons: bool, check: Callable[[], None]
    ) -> list[Judgement]:
        """The judgements ``prepare`` made (all the work is per video)."""
        if with_reasons:
            return list(prepared)
        return [
            Judgement(tuple(v.without_reasons() for v in j.dimensions), j.dynamic_degree)
            for j in prepared
        ]

    def _verdict(
        self,
        dim: Dimension,
        findings: list[Finding],
        evidence: list[Evidence],
        n: int,
        dyn: float,
    ) -> DimensionVerdict:
        findings = sorted(findings, key=lambda f: (f.start_s, f.tag))
        model = self.models[dim]
        probs = model.probabilities(model.badness((e.tag, e.badness) for e in evidence))
        reasons = tuple(f.reason for f in findings)
        if not reasons:
            raised = sorted((e for e in evidence if e.badness >= 0.3), key=lambda e: -e.badness)
            if probs.most_likely() is Label.GOOD or not raised:
                reasons = (_CLEAN_REASON[dim].format(n=n, dyn=dyn),)
            else:
                # No one defect passes its threshold, yet together they cost a label:
                # say which readings (1 = a defect's threshold) add up.
                shown = ", ".join(f"{e.tag.replace('_', ' ')} {e.badness:.2f}" for e in raised)
                reasons = (
                    f"No single defect passes its threshold in {n} analysed frames, but several "
                    f"readings are raised together ({shown}; 1 = a defect's threshold).",
                )
        issues = tuple(Issue(f.tag, f.start_s, f.end_s, round(f.severity, 3)) for f in findings)
        return DimensionVerdict.assessed(dim, probs, reasons, issues)
