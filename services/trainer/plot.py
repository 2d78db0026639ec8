"""The PNG plot of a run: reward and guard signals over steps (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lift.runs import StepMetrics


def _smooth(values: Sequence[float], k: int) -> list[float]:
    out, acc = [], 0.0
    window: list[float] = []
    for v in values:
        window.append(v)
        acc += v
        if len(window) > k:
            acc -= window.pop(0)
        out.append(acc / len(window))
    return out


def plot_run(steps: Sequence[StepMetrics], result: dict[str, Any] | None, path: Path) -> Path:
    """Write reward (raw and smoothed), dynamic degree and real-clip loss per step to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [m.step for m in steps]
    k = max(1, len(xs) // 20)
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    series = [
        ("reward", "critic reward (train clips)", axes[0]),
        ("dynamic_degree", "guard: dynamic degree", axes[1]),
        ("real_loss", "guard: loss on real clips", axes[2]),
    ]
    for key, title, ax in series:
        values = [getattr(m, key) for m in steps]
        pts = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if pts:
            px, py = zip(*pts, strict=True)
            ax.plot(px, py, color="0.75", linewidth=0.8, label="per step")
            ax.plot(px, _smooth(py, k), linewidth=1.8, label=f"mean of {k}")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    if result and result.get("reward_before") is not None:
        ax = axes[0]
        for name, style in (("reward_before", "--"), ("reward_after", "-")):
            ax.axhline(result[name], linestyle=style, color="tab:red", linewidth=1)
        ci = result.get("ci95")  # None with one paired eval video: no interval to show
        ax.set_title(
            f"critic reward — held-out {result['reward_before']:.3f} → "
            f"{result['reward_after']:.3f} (gain {result['gain']:+.3f}"
            + ("" if ci is None else f" ± {ci:.3f}")
            + ")",
            fontsize=10,
        )
    axes[0].legend(fontsize=8, loc="lower right")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
