"""The ``signal`` backend: pixel statistics -> findings -> labels with probabilities.

How a dimension's label comes about: every finding has a severity in [0, 1];
their sum ``z`` is the dimension's badness. An ordinal logistic model turns it
into label probabilities:

    P(worse than good) = sigmoid((z - 0.30) / 0.12)
    P(bad)             = sigmoid((z - 0.75) / 0.12)

so a clean clip (z = 0) is ~92 % good, one moderate defect (z ~ 0.5) is
mostly normal, and a severe or several defects (z >= 0.9) are mostly bad.
The label is the most probable one; the score is p_good + 0.5 p_normal.
These cut points are set by hand on the sample defects, not fitted to human
ratings (the HRA tools of the VLM issue measure agreement).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from lift.critique import Dimension, DimensionVerdict, Issue, LabelProbabilities, ModelInfo
from lift.services.critic.backends.base import ONE_FRAME_REASON, Judgement, one_frame
from lift.services.critic.backends.signal.detect import Detector, Finding, Thresholds
from lift.services.critic.backends.signal.measure import measure
from lift.video import DecodedVideo

VERSION = "1.0"
NEEDS_VLM = (
    "Not assessed: comparing the video with the prompt needs a vision-language backend "
    "(vlm or composite); the signal backend measures pixels only."
)
_CLEAN_REASON = {
    Dimension.MOTION_SMOOTHNESS: "Motion is continuous: no frozen frames, stutter, judder or cuts "
    "found in {n} analysed frames (dynamic degree {dyn:.2f}).",
    Dimension.VIDEO_FIDELITY: "The picture is clean and stable: no flicker, blur, noise, "
    "clipped exposure or compression blocks found in {n} analysed frames.",
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def probabilities(badness: float) -> LabelProbabilities:
    """Ordinal-logistic label probabilities for a summed severity ``badness``."""
    worse = _sigmoid((badness - 0.30) / 0.12)
    bad = _sigmoid((badness - 0.75) / 0.12)
    return LabelProbabilities(good=1.0 - worse, normal=worse - bad, bad=bad)


class SignalBackend:
    """Deterministic, weight-free critic of motion smoothness and video fidelity."""

    assessed: tuple[Dimension, ...] = (Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY)
    pixel_format = "gray"
    batched = False

    def __init__(self, thresholds: Thresholds | None = None, max_frames: int = 64) -> None:
        self.thresholds = thresholds or Thresholds()
        self.max_frames = max_frames
        self.model = ModelInfo(backend="signal", name="lift-signal", version=VERSION)

    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> Judgement:
        """Measure the frames, apply the rules, and give a verdict per dimension."""
        m = measure(video.frames, video.timestamps, should_stop=check)
        detector = Detector(m, self.thresholds)
        findings = detector.run()
        still = one_frame(video)
        verdicts = [DimensionVerdict.unassessed(Dimension.SEMANTIC_CONSISTENCY, NEEDS_VLM)]
        for dim in self.assessed:
            if still and dim == Dimension.MOTION_SMOOTHNESS:
                # One frame has no motion: no score (it would reward still frames).
                verdicts.append(DimensionVerdict.unassessed(dim, ONE_FRAME_REASON))
                continue
            mine = [f for f in findings if f.dimension == dim]
            verdicts.append(self._verdict(dim, mine, video.num_sampled, detector.dynamic_degree))
        dynamic = None if still else detector.dynamic_degree
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

    @staticmethod
    def _verdict(dim: Dimension, findings: list[Finding], n: int, dyn: float) -> DimensionVerdict:
        findings = sorted(findings, key=lambda f: (f.start_s, f.tag))
        probs = probabilities(sum(f.severity for f in findings))
        reasons = tuple(f.reason for f in findings) or (_CLEAN_REASON[dim].format(n=n, dyn=dyn),)
        issues = tuple(Issue(f.tag, f.start_s, f.end_s, round(f.severity, 3)) for f in findings)
        return DimensionVerdict.assessed(dim, probs, reasons, issues)
