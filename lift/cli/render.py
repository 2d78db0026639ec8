"""Readable terminal output of critiques, agreement reports and alignment runs (rich)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Critique, Label

if TYPE_CHECKING:  # the HRA tools pull in video decoding; remote critiques must not pay for it
    from lift.hra.agreement import AgreementReport

_STYLE = {Label.GOOD: "green", Label.NORMAL: "yellow", Label.BAD: "red", Label.UNASSESSED: "dim"}
_RUN_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def critique_table(name: str, c: Critique) -> Table:
    """One table per video: a row per dimension with label, score, issues and reasons."""
    reward = "n/a" if c.reward is None else f"{c.reward:.3f}"
    dyn = "" if c.dynamic_degree is None else f"  dynamic degree {c.dynamic_degree:.2f}"
    table = Table(
        title=f"{name}  reward {reward}{dyn}  ({c.model.backend} {c.model.name})",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("dimension")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("issues")
    table.add_column("reasons", ratio=1)
    for d in c.dimensions:
        issues = "\n".join(
            f"{i.tag} {i.start_s:.2f}–{i.end_s:.2f}s ({i.severity:.2f})" for i in d.issues
        )
        table.add_row(
            d.name.value.replace("_", " "),
            f"[{_STYLE[d.label]}]{d.label.value}[/]",
            "—" if d.score is None else f"{d.score:.2f}",
            issues or "—",
            "\n".join(d.reasons),
        )
    return table


def print_critique(console: Console, name: str, c: Critique) -> None:
    """Print one critique as a table."""
    console.print(critique_table(name, c))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def print_agreement(console: Console, reports: Sequence[AgreementReport]) -> None:
    """The paper's Table-2 layout (accuracy % per dimension and average), then confusions."""
    from lift.hra.agreement import PAPER_TABLE2

    table = Table(title="Agreement with human labels (accuracy %)", title_justify="left")
    # A long critic name (signal+cal-<sha8>, an address) folds rather than being cut off, and
    # the dimension names take two header lines: the table fits 80 columns with every column.
    longest = max((len(r.critic) for r in reports), default=6)
    table.add_column("critic", overflow="fold", min_width=min(20, longest))
    for d in DIMENSIONS:
        table.add_column(d.value.replace("_", "\n").title(), justify="right", min_width=5)
    table.add_column("Avg", justify="right", min_width=5)
    table.add_column("n", justify="right")
    for r in reports:
        accs = [_pct(r.dimensions[d].accuracy) for d in DIMENSIONS]
        n = sum(a.compared for a in r.dimensions.values())
        table.add_row(r.critic, *accs, _pct(r.average), str(n))
    for name, nums in PAPER_TABLE2.items():
        table.add_row(f"[dim]{name}[/dim]", *(f"[dim]{x:.1f}[/dim]" for x in nums), "")
    console.print(table)
    for r in reports:
        for d in DIMENSIONS:
            a = r.dimensions[d]
            if a.compared == 0:
                continue
            conf = Table(
                title=f"{r.critic} — {d.value}: human (rows) vs critic (columns)",
                title_justify="left",
            )
            conf.add_column("")
            for lab in ASSESSED_LABELS:
                conf.add_column(lab.value, justify="right")
            for h in ASSESSED_LABELS:
                conf.add_row(h.value, *(str(a.confusion[h][c]) for c in ASSESSED_LABELS))
            console.print(conf)
        for rec, err in r.errors:
            console.print(f"[red]{r.critic}: line {rec.line} ({rec.video}): {err}[/red]")


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def print_align_summary(console: Console, s: Mapping[str, Any]) -> None:
    """`lift align`'s report: held-out reward before/after with its CI, guards, adapter, plot.

    Any number may be missing (a run with one eval video has no confidence interval, a run
    without eval prompts has no rewards), so each prints as ``n/a`` rather than failing.
    """
    if s["state"] != "succeeded":
        console.print(f"[red]run {s['run_id']} {s['state']}[/]: {s['reason']}")
        return
    if s["reward_before"] is not None:
        if s["significant"] is None:
            verdict = "[dim]significance unknown[/]"
        else:
            verdict = "[green]significant[/]" if s["significant"] else "[yellow]not significant[/]"
        gain = _num(s["gain"], "+.4f")
        ci = "" if s["ci95"] is None else f" ± {s['ci95']:.4f} (95 % CI)"
        n = s["n"]
        over = "1 paired video (no interval from one video)" if n == 1 else f"{n} paired videos"
        console.print(
            f"held-out reward: before {_num(s['reward_before'])}, after "
            f"{_num(s['reward_after'])}; gain {gain}{ci} over {over} {verdict}"
        )
        g = s["guards"]
        for name in ("dynamic_degree", "real_loss"):
            v = g.get(name) or {}
            if v.get("before") is not None:
                console.print(f"guard {name}: {_num(v['before'])} → {_num(v.get('after'))}")
        console.print(f"reward-hacking warnings: {', '.join(g.get('warnings') or []) or 'none'}")
    if s.get("adapter_dir"):
        console.print(f"adapter: {s['adapter_dir']} (generator version {s['adapter_version']})")
    if s.get("plot"):
        console.print(f"plot: {s['plot']}")


def print_runs(console: Console, runs: Sequence[Mapping[str, Any]]) -> None:
    """`lift runs list`: one row per run."""
    table = Table(title=f"runs ({len(runs)}, newest first)", title_justify="left")
    # ids stay whole however narrow the terminal (people copy them into `lift runs show`);
    # the other columns fold or wrap instead of ending in an ellipsis.
    id_width = max((len(str(r["id"])) for r in runs), default=2)
    table.add_column("id", no_wrap=True, min_width=id_width)
    for col in ("name", "state", "step", "adapter", "reason"):
        table.add_column(col, justify="right" if col == "step" else "left", overflow="fold")
    for r in runs:
        table.add_row(  # run names and reasons are the caller's text, never markup
            escape(str(r["id"])),
            escape(str(r.get("name") or "")),
            f"[{_RUN_STYLE.get(str(r['state']), '')}]{r['state']}[/]",
            f"{r.get('step', 0)}/{r.get('total_steps', '?')}",
            escape(str(r.get("adapter_version") or "—")),
            escape(str(r.get("reason") or "")),
        )
    console.print(table)


def print_run(console: Console, run: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    """`lift runs show`: the run's state and progress, then its result when it has one."""
    console.print(
        f"run [bold]{run['id']}[/] {run.get('name') or ''}: "
        f"[{_RUN_STYLE.get(str(run['state']), '')}]{run['state']}[/], step "
        f"{run.get('step', 0)}/{run.get('total_steps', '?')}, resumes {run.get('resumes', 0)}"
    )
    if run.get("reason"):
        console.print(f"reason: {run['reason']}")
    if run.get("result") is not None:
        print_align_summary(console, summary)
