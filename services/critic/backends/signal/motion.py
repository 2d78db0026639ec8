"""Motion-smoothness rules: static video, cuts, frozen frames, stutter, judder.

The rules judge frame *timing*, not how the camera moves. They read
consecutive analysed frames (the backend analyses every frame of a clip up to
its cap) on contrast-normalised small frames, so brightness changes are not
motion:

* **held frames**: a pair whose picture barely changes while the scene moves
  (its change, and its optical flow, below ``held_ratio`` of the lower
  quartile of the 6 nearest moving pairs of the same shot: a long freeze is
  measured against the motion on both of its sides, and does not make the
  clip look static). A run of two or more held pairs (a frame shown three
  times or more) is ``frozen_frames``. A *single* repeated frame is what
  frame-rate conversion leaves (24 -> 25 fps repeats one frame a second) and
  is not a defect on its own; single repeats closer than ``stutter_gap_s`` to
  another (several a second) are ``stutter``.
* **jolts** (dropped frames, uneven presentation timestamps): motion, camera
  motion included, is smooth at the frame rate, so a pair changes the picture
  about as much as its neighbours do over the same time. Each side of a pair
  (up to ``LAGS`` frames) gives how the change grows with elapsed time; the
  pair's change read on that curve is the time it is worth. Worth twice its
  own time step, it moves twice too fast: a dropped frame (two steps of
  change in one step's time) or a jittered timestamp (one step of change in
  a shorter time) alike; frames further apart in time (variable frame rate)
  are expected to change more. Hand-held shake turns the motion's direction,
  but smoothly: the size of the change keeps pace with its neighbours'.
  Judder is the second-strongest jolt in any one-second window: motion that
  jerks again and again; one lone spike (a bump, one missing frame) is not.
* **cuts**: a pair whose change is far above its neighbours' and whose coarse
  structure does not carry over, located at the first frame of the new shot;
  a freeze's catch-up jump is not a cut.

Each rule gives the clip's continuous evidence for its defect (see
:mod:`.detect`). Pairs explained by a cut, an exposure jump or a freeze are
marked in ``excluded`` so that no other rule (judder here, flicker in
:mod:`.fidelity`) names them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lift.critique import Dimension
from lift.services.critic.backends.signal.detect import Rules, fmt, runs, severity

MOT = Dimension.MOTION_SMOOTHNESS


@dataclass(frozen=True)
class MotionThresholds:
    """Where each motion signal starts to count as a defect. Grey levels are 0..255."""

    static_dynamic_degree: float = 0.05
    """Below this dynamic degree the clip is "static" (and freezes cannot be judged)."""
    held_ratio: float = 0.3
    """A pair is held when its change is below this share of the nearest moving pairs' change."""
    held_floor: float = 0.15
    """...and those moving pairs change by more than this (normalised grey levels): the scene moves."""
    frozen_pairs: int = 2
    """A run of this many held pairs (a frame shown 3 times) is a freeze."""
    stutter_gap_s: float = 0.5
    """Single repeated frames closer than this to another held pair are stutter."""
    cut_ratio: float = 2.5
    """A cut: change this many times the median of its neighbours' change..."""
    cut_decorrelation: float = 0.5
    """...and 1 - structural correlation of the two frames this large (see ``_cut_strength``)."""
    exposure_jump: float = 0.1
    """A change of the clipped share of pixels above this between two frames is an exposure jump, not a cut."""
    change_noise: float = 0.1
    """Change of contrast-normalised frames (grey levels) that is noise, not motion."""
    strong_jolt: float = 2.0
    """A pair moving this many times too fast is left out of its neighbours' scale."""
    jolt_base: float = 1.2
    """A pair moving up to this many times as fast as the motion around it is smooth."""
    judder: float = 0.5
    """Judder: two jolts (log2(ratio / jolt_base)) this strong within ``jolt_window_s``: twice
    in a second a pair moves 1.7x as fast as the motion around it (one dropped frame is 2x)."""
    jolt_window_s: float = 1.0
    """The window the jolts are gathered over."""


def _nearest_low(x: np.ndarray, valid: np.ndarray, shot: np.ndarray, k: int) -> np.ndarray:
    """Per index, the lower quartile of ``x`` over the ``k`` nearest other valid indices of
    its shot (the lower quartile: jumps among them, a freeze's catch-up or dropped frames,
    must not make ordinary motion look held). NaN where the shot has no other valid index.
    """
    n = x.size
    out = np.full(n, np.nan)
    for s in np.unique(shot):
        members = np.flatnonzero(shot == s)
        pool = members[valid[members]]
        if pool.size == 0:
            continue
        # The k nearest are among the k valid indices on either side of each member.
        pos = np.searchsorted(pool, members)
        offsets = np.arange(-k, k + 1)
        cand = pos[:, None] + offsets[None, :]
        ok = (cand >= 0) & (cand < pool.size)
        idx = np.where(ok, pool[np.clip(cand, 0, pool.size - 1)], -1)
        ok &= idx != members[:, None]
        dist = np.where(ok, np.abs(idx - members[:, None]), n + 1).astype(np.float64)
        # Nearest first (ties: the earlier index, as a stable sort of distances would).
        order = np.lexsort((idx, dist), axis=1)[:, :k]
        near = np.take_along_axis(idx, order, axis=1)
        near_ok = np.take_along_axis(ok, order, axis=1)
        vals = np.sort(np.where(near_ok, x[np.clip(near, 0, n - 1)], np.inf), axis=1)
        count = near_ok.sum(axis=1)
        has = count > 0
        # The lower quartile of each row's valid values (linear, as np.quantile).
        pos = 0.25 * (count[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count[has] - 1)
        rows = vals[has]
        a = np.take_along_axis(rows, lo[:, None], axis=1)[:, 0]
        b = np.take_along_axis(rows, hi[:, None], axis=1)[:, 0]
        out[members[has]] = a + (pos - lo) * (b - a)
    return out


def _neighbour_median(x: np.ndarray, valid: np.ndarray, reach: int) -> np.ndarray:
    """Per index, the median of ``x`` over valid indices within ``reach`` (itself excluded)."""
    n = x.size
    out = np.full(n, np.nan)
    for t in range(n):
        lo, hi = max(0, t - reach), min(n, t + reach + 1)
        sel = [i for i in range(lo, hi) if i != t and valid[i]]
        if sel:
            out[t] = float(np.median(x[sel]))
    return out


def _side(
    lag: np.ndarray,
    times: np.ndarray,
    valid: np.ndarray,
    frame: int,
    direction: int,
    first_pair: int,
) -> tuple[np.ndarray, np.ndarray]:
    """How the picture changes with elapsed time along one side of a pair.

    From ``frame`` going ``direction`` (-1 back, +1 on) j = 1, 2, ... frames:
    the elapsed seconds and the change (``lag``), while every pair spanned
    (``first_pair`` onwards in that direction) is valid.
    """
    span: list[float] = []
    change: list[float] = []
    for j in range(1, lag.shape[1] + 1):
        other, pair = frame + direction * j, first_pair + direction * (j - 1)
        if not (0 <= other < times.size and 0 <= pair < valid.size and valid[pair]):
            break
        newer = max(frame, other)
        v = float(lag[newer, j - 1])
        if not math.isfinite(v):
            break
        span.append(abs(float(times[other] - times[frame])))
        change.append(v)
    return np.array(span), np.array(change)


def _change_at(taus: np.ndarray, span: np.ndarray, change: np.ndarray) -> np.ndarray:
    """One side's change after each of ``taus`` seconds (its curve, extended as in _time_worth)."""
    curve = np.concatenate([[0.0], np.maximum.accumulate(change)])
    grid = np.concatenate([[0.0], span])
    top, end = float(curve[-1]), float(grid[-1])
    slope = max((top - float(curve[-2])) / max(end - float(grid[-2]), 1e-9), top / (2 * end))
    inside = np.interp(taus, grid, curve)
    return np.where(taus <= end, inside, top + (taus - end) * slope)


def _time_worth(d: float, span: np.ndarray, change: np.ndarray) -> float:
    """The time over which one side's motion changes the picture by ``d`` (its curve inverted).

    The curve (0, 0), (span_j, change_j) is made non-decreasing; past its end
    it goes on with its last slope (at least half its mean slope: a textured
    picture's change grows slower than the displacement, but it grows).
    """
    curve = np.concatenate([[0.0], np.maximum.accumulate(change)])
    grid = np.concatenate([[0.0], span])
    top = float(curve[-1])
    if d <= top:
        return float(np.interp(d, curve, grid))
    slope = max((top - float(curve[-2])) / max(grid[-1] - grid[-2], 1e-9), top / (2 * grid[-1]))
    return float(grid[-1] + (d - top) / max(slope, 1e-9))


def _sampled_alike(times: np.ndarray) -> np.ndarray:
    """Pairs to judge for jolts: all, unless the frames are a sample of a constant-rate clip.

    A long clip analysed at fewer frames than it has skips source frames
    between analysed ones: every time is then a whole multiple of the source's
    frame step. When most pairs are one source step apart, only those are
    judged (a pair over two steps read against one-step neighbours is noise);
    when most skip frames, the analysed rate is too coarse to tell a dropped
    frame from fast motion and no pair is judged. Times on no such grid
    (jittered timestamps, a variable frame rate) are all judged.
    """
    steps = np.diff(times)
    every = np.ones(steps.size, bool)
    if steps.size < 4 or float(steps.min()) <= 0:
        return every
    for k in (1, 2, 3):
        unit = float(steps.min()) / k
        mult = (times - times[0]) / unit
        if np.all(np.abs(mult - np.round(mult)) < 0.08):
            whole = np.round(steps / unit)
            if whole.max() < 2:
                return every
            values, counts = np.unique(whole, return_counts=True)
            mode = values[np.argmax(counts)]
            return np.asarray(whole == 1) if mode == 1 else np.zeros(steps.size, bool)
    return every


@dataclass
class MotionRules(Rules):
    """Applies every motion rule to one clip's measurements."""

    th: MotionThresholds = field(default_factory=MotionThresholds)

    def __post_init__(self) -> None:
        m = self.m
        pairs = max(self.n - 1, 0)
        self.excluded = np.zeros(pairs, bool)
        """Pairs explained by a cut, an exposure jump or a freeze: skipped by other rules."""
        self.jump = self._exposure_jumps() if pairs else np.zeros(0, bool)
        self.cut_strength = self._cut_strength() if pairs else np.zeros(0)
        self.cut = (self.cut_strength >= 1.0) & ~self.jump
        # Shots: pairs between two cuts; motion is compared only within a shot.
        shot = np.cumsum(self.cut) - self.cut
        self.held = self._held(shot, ~self.cut) if pairs else np.zeros(0, bool)
        # The jump out of a freeze (frames were lost while it held) is the
        # freeze's effect, not a cut.
        after = np.zeros(pairs, bool)
        for a, b in runs(self.held):
            if b > a:
                after[max(0, a - 1)] = after[min(pairs - 1, b + 1)] = True
        self.cut &= ~after & ~self.held
        self.freeze_edge = after
        moving = ~self.held
        speeds = m.speed[moving] if moving.any() else m.speed
        # Over moving pairs: a long freeze must not make the clip look static.
        self.med_speed = float(np.median(speeds)) if speeds.size else 0.0
        fps = 1.0 / self.step if self.step > 0 else 8.0
        # Share of the frame diagonal the moving subject crosses per second.
        per_s = self.med_speed / m.diag_px * fps
        self.dynamic_degree = float(1.0 - math.exp(-per_s / 0.05))
        self.static = self.dynamic_degree < self.th.static_dynamic_degree

    def _exposure_jumps(self) -> np.ndarray:
        """Pairs where the clipped share of pixels jumps (a flash, an exposure change)."""
        q, th = self.m.quality, self.th
        return (np.abs(np.diff(q.clipped_high)) > th.exposure_jump) | (
            np.abs(np.diff(q.clipped_low)) > th.exposure_jump
        )

    def _cut_strength(self) -> np.ndarray:
        """Per pair, how far it is past the cut criteria (>= 1: a cut).

        Both must hold: the change is far above its neighbours' (``r``) and
        the coarse structure does not carry over (``c``); one may stand in for
        the other up to a factor 2 (a new shot framed like the old one still
        changes every pixel), never more.
        """
        m, th = self.m, self.th
        d = m.norm_diff.astype(np.float64)
        ref = _neighbour_median(d, np.ones(d.size, bool), 3)
        r = d / (np.nan_to_num(ref) + 0.3) / th.cut_ratio
        c = np.maximum(1.0 - m.structure_corr, 0.0) / th.cut_decorrelation
        return np.minimum(np.sqrt(r * c), 2.0 * np.minimum(r, c))

    def _held(self, shot: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Pairs whose picture stands still while the nearest moving pairs of the shot move."""
        m, th = self.m, self.th
        d, sp = m.norm_diff.astype(np.float64), m.speed.astype(np.float64)
        # Seed with the obvious repeats, then compare every pair with the median
        # of the nearest pairs that move (twice: a long freeze is then measured
        # against the motion on both of its sides, not against itself).
        held = valid & (d < 0.1 * float(np.quantile(d, 0.9)))
        for _ in range(2):
            ref = _nearest_low(d, valid & ~held, shot, 6)
            sref = _nearest_low(sp, valid & ~held, shot, 6)
            ok = valid & np.isfinite(ref) & (ref > th.held_floor)
            held = (
                ok
                & (d < th.held_ratio * np.nan_to_num(ref))
                & (sp < th.held_ratio * np.nan_to_num(sref) + 0.05)
            )
        return held

    def run(self) -> MotionRules:
        """Apply all rules (findings and evidence land on ``self``)."""
        if self.n >= 2:
            self._static()
            self._exposure_jumps_and_cuts()
            self._frozen()
            self._judder()
        return self

    def _static(self) -> None:
        if self.static:
            span = (float(self.m.times[0]), float(self.m.times[-1] + self.step))
            self.add(
                MOT,
                "static_video",
                span,
                0.4,
                f"The video is nearly static (dynamic degree {self.dynamic_degree:.2f}): almost "
                "nothing moves, so its smoothness says little.",
            )
        self.evidence_of(
            MOT, "static_video", self.th.static_dynamic_degree / max(self.dynamic_degree, 1e-3)
        )

    def _exposure_jumps_and_cuts(self) -> None:
        m = self.m
        self.excluded |= self.jump | self.cut
        cut = self.cut
        for t in np.flatnonzero(cut):
            start = float(m.times[t + 1])
            self.add(
                MOT,
                "abrupt_cut",
                (start, start + self.step),
                0.7,
                f"Abrupt cut at {start:.2f} s: the whole scene changes from one frame to the next "
                f"(structural correlation {m.structure_corr[t]:.2f}).",
            )
        count = int(cut.sum())
        duration = float(m.times[-1] - m.times[0] + self.step)
        if count:
            # One cut is the threshold; more cuts, and more of them per second, are
            # worse; a starker cut a little worse than a borderline one.
            per_s = count / max(duration, 1e-3)
            stark = 1.0 + 0.1 * math.log2(float(self.cut_strength[cut].max()))
            b = (1.0 + math.log2(count)) * math.sqrt(max(1.0, per_s)) * stark
        else:
            judged = ~(self.jump | self.held | self.freeze_edge)
            b = min(float(np.max(self.cut_strength[judged], initial=0.0)) ** 2, 0.99)
        self.evidence_of(MOT, "abrupt_cut", b)

    def _frozen(self) -> None:
        th = self.th
        if self.static:
            return
        held = self.held & ~self.excluded
        times = self.m.times
        found = runs(held)
        singles = np.array([times[a] for a, b in found if a == b])
        stutter_b = 0.0
        frozen_pairs = 0
        for a, b in found:
            span = self.frame_span(a, b + 1)
            # The catch-up jump right after (and into) a freeze is its effect, not judder.
            self.excluded[max(0, a - 1) : b + 2] = True
            if b == a:
                others = np.abs(singles - times[a])
                others = others[others > 0]
                gap = float(others.min()) if others.size else math.inf
                stutter_b = max(stutter_b, (th.stutter_gap_s / gap) ** 2)
                if gap < th.stutter_gap_s:
                    self.add(
                        MOT,
                        "stutter",
                        span,
                        0.3,
                        f"The motion stutters at {span[0]:.2f} s: a frame repeats while the "
                        f"scene moves, {gap:.2f} s from the next repeat.",
                    )
                continue
            pairs = b - a + 1
            dur = span[1] - span[0]
            if pairs >= th.frozen_pairs:
                frozen_pairs += pairs
                self.add(
                    MOT,
                    "frozen_frames",
                    span,
                    min(1.0, 0.35 + 0.4 * dur),
                    f"Frames {fmt(*span)} are frozen while the rest of the video moves "
                    f"({pairs + 1} identical frames).",
                )
        frozen_b = (
            1.0 + math.log2(frozen_pairs / th.frozen_pairs)
            if frozen_pairs >= th.frozen_pairs
            else 0.0
        )
        self.evidence_of(MOT, "frozen_frames", frozen_b)
        self.evidence_of(MOT, "stutter", stutter_b)

    def _time_worth(self, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair, how much time of the motion around it its picture change is worth,
        the change of the neighbours' first step (the scale of the motion), and the
        weight of the reading (1, or 0.5 where only one side could be read).

        Each side of the pair (up to LAGS frames, while their pairs are valid)
        gives how the change grows with elapsed time; the pair's change read on
        that curve is the time it is worth, averaged over both sides. A pair
        worth twice its own time step moves twice too fast: a dropped frame
        (its change is that of two steps in one step's time), a jittered
        timestamp (a normal change in a shorter time) alike, while frames that
        are further apart in time (variable frame rate, a sampled long clip)
        are expected to change more. Measured on the picture change, not on
        the flow, so it holds for textured scenes whose change grows slower
        than the displacement. NaN where no side has two steps.
        """
        m = self.m
        pairs = m.norm_diff.size
        steps = np.maximum(np.diff(m.times), 1e-6)
        worth = np.full(pairs, np.nan)
        unit = np.full(pairs, np.nan)
        weight = np.zeros(pairs)
        for t in range(pairs):
            before = _side(m.lag_diff, m.times, valid, t, -1, t - 1)
            after = _side(m.lag_diff, m.times, valid, t + 1, 1, t + 1)
            sides = [side for side in (before, after) if side[0].size >= 2]
            if not sides:
                continue
            # Both sides' curves on a grid of this pair's own time step, averaged
            # (an accelerating scene: the slow side and the fast side balance).
            taus = steps[t] * np.arange(1, m.lag_diff.shape[1] + 1)
            curve = np.mean([_change_at(taus, *side) for side in sides], axis=0)
            worth[t] = _time_worth(float(m.norm_diff[t]), taus, curve)
            unit[t] = float(np.mean([side[1][0] for side in sides]))
            # One side only (the clip's first or last frames, next to a cut or a
            # freeze): half the weight, as the motion may be speeding up or slowing.
            weight[t] = len(sides) / 2
        return worth, unit, weight

    def _jolts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair: its jolt (log2 of how much too fast it moves, past ``jolt_base``; 0 when
        smooth or not judged), how many times too fast it moves, and its time step."""
        m, th = self.m, self.th
        steps = np.maximum(np.diff(m.times), 1e-6)
        valid = ~(self.excluded | self.held) & _sampled_alike(m.times)
        worth, unit, weight = self._time_worth(valid)
        # Again with the strong jumps left out of the scale: a side reaching the
        # next dropped frame would make this one look smaller.
        strong = np.nan_to_num(worth / steps) > th.strong_jolt
        if strong.any():
            again = self._time_worth(valid & ~strong)
            read = np.isfinite(again[0])
            worth, unit, weight = (
                np.where(read, b, a) for a, b in zip((worth, unit, weight), again, strict=True)
            )
        ratio = worth / steps
        # Where the picture barely moves, its change is mostly noise and a jump
        # of it invisible: the excess over 1 is scaled by unit / (unit + noise).
        ratio = 1.0 + (ratio - 1.0) * weight * unit / (unit + th.change_noise)
        ok = valid & np.isfinite(ratio)
        jolt = np.where(ok, np.log2(np.maximum(np.nan_to_num(ratio), 1e-6) / th.jolt_base), 0.0)
        return np.maximum(jolt, 0.0), ratio, steps

    def _judder(self) -> None:
        m, th = self.m, self.th
        if self.static or self.n < 4:
            return
        jolt, ratio, steps = self._jolts()
        # Per window of jolt_window_s (pairs by their start time): its second
        # strongest jolt. Judder is motion that jerks again and again; one lone
        # spike (a missing frame once, a bump of the camera) is not, and how far
        # the picture jumps per jolt (how many frames are missing) is the strength.
        starts = m.times[:-1]
        ends = np.searchsorted(starts, starts + th.jolt_window_s, side="left")
        window = np.array(
            [
                float(np.sort(jolt[i : ends[i]])[-2]) if ends[i] - i >= 2 else 0.0
                for i in range(starts.size)
            ]
        )
        peak = float(window.max(initial=0.0))
        self.evidence_of(MOT, "judder", peak / th.judder)
        if peak < th.judder:
            return
        hot = np.zeros(starts.size, bool)
        for i in np.flatnonzero(window >= th.judder):
            hot[i : ends[i]] = True
        flagged = hot & (jolt >= th.judder)
        gap = max(1, round(th.jolt_window_s / max(self.step, 1e-6)) // 2)
        median_step = float(np.median(steps))
        for a, b in runs(flagged, max_gap=gap):
            span = self.pair_span(a, b)
            idx = np.flatnonzero(flagged[a : b + 1]) + a
            count = int(idx.size)
            top = float(ratio[idx].max())
            uneven = bool(np.any(np.abs(steps[idx] - median_step) > 0.15 * median_step))
            cause = (
                "the presentation timestamps are uneven"
                if uneven
                else "frames are missing (the picture jumps ahead)"
            )
            self.add(
                MOT,
                "judder",
                span,
                severity(top, span[1] - span[0], base=0.3 + 0.05 * count),
                f"Motion is jerky over {fmt(*span)}: {count} jolts where the picture moves up "
                f"to {top:.1f}x as fast as around them; {cause}.",
            )
