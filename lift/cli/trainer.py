"""`lift trainer serve` and `lift align`."""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from lift.cli.common import needs_extra, run_service, settings_or_exit

trainer_app = typer.Typer(help="The trainer service.", no_args_is_help=True)


def trainer_settings(overrides: dict[str, Any]) -> Any:
    """TrainerSettings from the given flags (exit 2 on invalid values)."""
    from lift.services.trainer.settings import TrainerSettings

    return settings_or_exit("trainer", TrainerSettings, overrides)


DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="Runs database, checkpoints, adapters [~/.local/share/lift/trainer]"),
]


@trainer_app.command("serve")
def trainer_serve(
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port [default 50053]")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP port [default 8082]")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [default 127.0.0.1]")] = None,
    data_dir: DataDirOpt = None,
    concurrent_runs: Annotated[
        int | None, typer.Option(help="Runs trained at once [default 1]")
    ] = None,
) -> None:
    """Run the trainer: gRPC and HTTP in one process (settings also from LIFT_TRAINER_*)."""
    settings = trainer_settings(
        {
            "grpc_port": grpc_port,
            "http_port": http_port,
            "host": host,
            "data_dir": data_dir,
            "concurrent_runs": concurrent_runs,
        }
    )
    with needs_extra("trainer", "lift trainer serve"):
        from lift.services.trainer.server import build_trainer

        run_service("trainer", settings, build_trainer)


@contextlib.contextmanager
def _demo_services() -> Iterator[tuple[str, str]]:
    """A critic and a generator on free ports in this process, for `lift align --demo`."""
    from lift.runner import start_in_thread
    from lift.services.critic.server import build_critic
    from lift.services.critic.settings import CriticSettings
    from lift.services.generator.server import build_generator
    from lift.services.generator.settings import GeneratorSettings

    critic, stop_critic = start_in_thread(
        build_critic, CriticSettings(grpc_port=0, http_port=0, log_level="WARNING")
    )
    try:
        gen, stop_gen = start_in_thread(
            build_generator, GeneratorSettings(grpc_port=0, http_port=0, log_level="WARNING")
        )
        try:
            yield f"127.0.0.1:{gen.grpc_port}", f"127.0.0.1:{critic.grpc_port}"
        finally:
            stop_gen()
    finally:
        stop_critic()


class _LocalTrainer:
    """The TrainerClient interface over a RunManager in this process."""

    def __init__(self, data_dir: Path | None) -> None:
        from lift.services.trainer.manager import RunManager

        self.manager = RunManager(trainer_settings({"data_dir": data_dir}))
        self.manager.load()

    def start_run(self, config: str) -> dict[str, Any]:
        return self.manager.start_run(config).to_json()

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.manager.get_run(run_id).to_json()

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        return self.manager.cancel_run(run_id).to_json()

    def watch(self, run_id: str, after_seq: int = 0) -> Iterator[Any]:
        from lift.runs import is_final_event

        seq = after_seq
        while True:
            for e in self.manager.wait_events(run_id, seq, 1.0):
                seq = e.seq
                yield e
                if is_final_event(e):
                    return

    def close(self) -> None:
        self.manager.close()


def align(
    config: Annotated[
        Path | None, typer.Option(help="Run config (YAML or JSON); see docs/trainer.md")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Train on the embedded defaults (tiny model, signal critic)"),
    ] = False,
    server: Annotated[
        str | None, typer.Option(help="Trainer gRPC address; unset: train in this process")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Override the config's steps")] = None,
    plot: Annotated[Path, typer.Option(help="Where to write the PNG plot")] = Path(
        "lift-align.png"
    ),
    data_dir: DataDirOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: rewards, ci95, guards")
    ] = False,
) -> None:
    """Run an alignment run, show its progress, and report the held-out reward before/after."""
    import yaml
    from rich.console import Console

    if (config is None) == (not demo):
        typer.secho("give exactly one of --config FILE or --demo", fg="red", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Console(stderr=as_json)
    with contextlib.ExitStack() as stack:
        if demo:
            from lift.services.trainer.demo import demo_config, write_real_clips

            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lift-align-")))
            if server is None:
                out.print("[dim]starting the demo critic and generator in this process…[/]")
                gen_addr, critic_addr = stack.enter_context(_demo_services())
            else:  # a trainer started by `lift up` reaches the services on their default ports
                gen_addr, critic_addr = "127.0.0.1:50052", "127.0.0.1:50051"
            cfg: dict[str, Any] = demo_config(
                gen_addr, critic_addr, write_real_clips(work / "real")
            )
            if data_dir is None and server is None:
                data_dir = work / "trainer"
        else:
            assert config is not None
            try:
                cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                typer.secho(f"cannot read the run config {config}: {exc}", fg="red", err=True)
                raise typer.Exit(2) from None
        if steps is not None and isinstance(cfg, dict):
            cfg["steps"] = steps
        if server is not None:
            from lift.trainer_client import TrainerClient

            client: Any = stack.enter_context(TrainerClient(server))
        else:
            client = _LocalTrainer(data_dir)
            stack.callback(client.close)
        _run_and_report(client, json.dumps(cfg), plot, as_json, out)


def _run_and_report(client: Any, config_text: str, plot: Path, as_json: bool, out: Any) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lift.services.trainer.plot import plot_run
    from lift.trainer_client import TrainerError

    try:
        run = client.start_run(config_text)
    except Exception as exc:  # InvalidInput in process, TrainerError over gRPC
        typer.secho(f"the run was refused: {getattr(exc, 'message', exc)}", fg="red", err=True)
        raise typer.Exit(2) from None
    run_id, total = run["id"], run["total_steps"]
    out.print(f"run [bold]{run_id}[/]: {total} steps")
    steps: list[dict[str, Any]] = []
    final_state = "unknown"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("train", total=total, info="")
        evals = bar.add_task("eval", total=1, info="", visible=False)
        try:
            for e in client.watch(run_id):
                if e.kind == "step":
                    steps.append({"step": e.step, **e.data})
                    info = f"reward {e.data['reward']:.3f} loss {e.data['loss']:.3f}"
                    bar.update(task, completed=e.step, info=info)
                elif e.kind == "eval_progress":
                    bar.update(
                        evals,
                        visible=True,
                        total=e.data["total"],
                        completed=e.data["done"],
                        description=f"eval {e.data['phase']}",
                    )
                elif e.kind in ("warning", "eval", "resumed"):
                    bar.console.print(("[yellow]" if e.kind == "warning" else "") + e.message)
                elif e.kind == "state":
                    final_state = e.data.get("state", final_state)
        except KeyboardInterrupt:
            client.cancel_run(run_id)
            out.print(f"[yellow]cancelled run {run_id}[/]")
            raise typer.Exit(130) from None
        except TrainerError as exc:
            typer.secho(f"lost the trainer: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
    final = client.get_run(run_id)
    result = final.get("result") or {}
    png = plot_run(steps, result, plot) if steps else None
    summary = _summary(final, result, png)
    _print_summary(out, summary)
    if as_json:
        print(json.dumps(summary))
    if final["state"] != "succeeded":
        raise typer.Exit(1)


def _summary(run: dict[str, Any], result: dict[str, Any], png: Path | None) -> dict[str, Any]:
    guards = dict(result.get("guards") or {})
    guards["warnings"] = result.get("warnings", [])
    return {
        "run_id": run["id"],
        "state": run["state"],
        "reason": run.get("reason", ""),
        "steps": run["step"],
        "reward_before": result.get("reward_before"),
        "reward_after": result.get("reward_after"),
        "gain": result.get("gain"),
        "ci95": result.get("ci95"),
        "significant": result.get("significant"),
        "n": result.get("n"),
        "guards": guards,
        "adapter_dir": result.get("adapter_dir"),
        "adapter_version": result.get("adapter_version"),
        "plot": str(png) if png else None,
    }


def _print_summary(out: Any, s: dict[str, Any]) -> None:
    if s["state"] != "succeeded":
        out.print(f"[red]run {s['run_id']} {s['state']}[/]: {s['reason']}")
        return
    if s["reward_before"] is not None:
        verdict = "[green]significant[/]" if s["significant"] else "[yellow]not significant[/]"
        out.print(
            f"held-out reward: before {s['reward_before']:.4f}, after {s['reward_after']:.4f}; "
            f"gain {s['gain']:+.4f} ± {s['ci95']:.4f} (95 % CI, {s['n']} paired videos) {verdict}"
        )
        g = s["guards"]
        for name in ("dynamic_degree", "real_loss"):
            v = g.get(name) or {}
            if v.get("before") is not None:
                out.print(f"guard {name}: {v['before']:.4f} → {v['after']:.4f}")
        out.print(f"reward-hacking warnings: {', '.join(g['warnings']) or 'none'}")
    out.print(f"adapter: {s['adapter_dir']} (generator version {s['adapter_version']})")
    if s["plot"]:
        out.print(f"plot: {s['plot']}")
