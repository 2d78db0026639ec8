"""`lift trainer serve|schema`, `lift align` and `lift runs list|show|watch|cancel`.

Talking to a trainer server (`--server`) imports no torch: only the client, the run
records and, for the plot, matplotlib (the `trainer` extra).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from lift.cli.common import (
    CaFileOpt,
    ClientCertOpt,
    ClientKeyOpt,
    TlsOpt,
    TokenOpt,
    credentials,
    fail,
    needs_extra,
    run_service,
    settings_or_exit,
)

trainer_app = typer.Typer(help="The trainer service.", no_args_is_help=True)
runs_app = typer.Typer(
    help="Alignment runs on a trainer server: list, show, watch, cancel.", no_args_is_help=True
)

DEFAULT_TRAINER = "localhost:50053"
"""The trainer's gRPC address when nothing else is given (its default port)."""
EXAMPLE_CONFIG = "examples/run-config.yaml"


def trainer_settings(overrides: dict[str, Any]) -> Any:
    """TrainerSettings from the given flags (exit 2 on invalid values)."""
    with needs_extra("trainer", "the trainer"):  # its settings already need video decoding
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


@trainer_app.command("schema")
def trainer_schema() -> None:
    """Print the JSON schema of a run config (what `lift align --config` and POST /v1/runs take)."""
    from lift.services.trainer.config import RunConfig

    sys.stdout.write(json.dumps(RunConfig.model_json_schema(), indent=2) + "\n")


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
    """The TrainerClient interface over a RunManager in this process.

    The caller is the operator here: unless LIFT_TRAINER_DATA_ROOTS /
    LIFT_TRAINER_ALLOWED_ENDPOINTS say otherwise, the run may read under ``roots``
    (the working directory, the config's directory) and call any endpoint.
    """

    def __init__(self, data_dir: Path | None, roots: list[Path]) -> None:
        import os

        from lift.services.trainer.manager import RunManager

        overrides: dict[str, Any] = {"data_dir": data_dir}
        if not os.environ.get("LIFT_TRAINER_DATA_ROOTS"):
            overrides["data_roots"] = roots
        if not os.environ.get("LIFT_TRAINER_ALLOWED_ENDPOINTS"):
            overrides["allowed_endpoints"] = ["*"]
        self.manager = RunManager(trainer_settings(overrides))
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


def run_json(run: Any) -> dict[str, Any]:
    """A run as its JSON form (the HTTP API's keys), whatever the client returned."""
    if isinstance(run, Mapping):
        return dict(run)
    data: dict[str, Any] = run.to_json()
    return data


def align(
    config: Annotated[
        Path | None,
        typer.Option(
            help=f"Run config (YAML or JSON), e.g. {EXAMPLE_CONFIG}; "
            "`lift trainer schema` prints every field"
        ),
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
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object on stdout (rewards, ci95, guards); progress "
            "and messages go to stderr",
        ),
    ] = False,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
) -> None:
    """Run an alignment run, show its progress, and report the held-out reward before/after.

    Progress bars and messages go to stderr; stdout carries the summary (or, with --json,
    only the JSON object).
    """
    import yaml

    if (config is None) == (not demo):
        fail("give exactly one of --config FILE or --demo", code=2)
    roots = [Path.cwd()]  # what an in-process run may read (see _LocalTrainer)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    err = _stderr_console()
    with contextlib.ExitStack() as stack:
        if as_json:  # anything a library prints must not end up inside the JSON
            stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        if demo:
            with needs_extra("trainer", "lift align --demo"):
                from lift.services.trainer.demo import (
                    demo_config,
                    demo_seed,
                    pin_threads,
                    write_real_clips,
                )

            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lift-align-")))
            gen_addr: str | None
            critic_addr: str | None
            try:
                seed = demo_seed()
                if server is None:  # same numbers on any core count: see demo.DEMO_THREADS
                    pin_threads()
            except ValueError as exc:
                fail(str(exc), code=2)
            if server is None:
                err.print("[dim]starting the demo critic and generator in this process…[/]")
                with needs_extra("all", "lift align --demo without --server"):
                    gen_addr, critic_addr = stack.enter_context(_demo_services())
            else:  # the trainer's own generator and critic (`lift up` points it at them)
                gen_addr = critic_addr = None
            real: Path | None = None
            if server is not None:
                # The trainer reads only under its data roots: a trainer on this machine
                # (`lift up`) with its default settings reads <data_dir>/inputs.
                with contextlib.suppress(OSError):
                    real = write_real_clips(trainer_settings({}).roots()[0] / "demo-real")
            real = real or write_real_clips(work / "real")
            cfg: Any = demo_config(gen_addr, critic_addr, real, seed=seed)
            roots.append(work)
            if data_dir is None and server is None:
                data_dir = work / "trainer"
        else:
            assert config is not None
            roots.append(config.resolve().parent)
            try:
                cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                fail(f"cannot read the run config {config}: {exc}", code=2)
        if steps is not None and isinstance(cfg, dict):
            cfg["steps"] = steps
        if server is not None:
            from lift.client import TrainerClient

            creds = credentials(token, tls, ca_file, client_cert, client_key)
            client: Any = stack.enter_context(TrainerClient(server, credentials=creds))
        else:
            with needs_extra("trainer", "lift align without --server"):
                client = _LocalTrainer(data_dir, roots)
            stack.callback(client.close)
        summary = _run_and_report(client, json.dumps(cfg), plot, err)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        from rich.console import Console

        from lift.cli.render import print_align_summary

        print_align_summary(Console(), summary)
    if summary["state"] != "succeeded":
        raise typer.Exit(1)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _run_and_report(client: Any, config_text: str, plot: Path, err: Any) -> dict[str, Any]:
    """Start a run, follow it to its end on stderr, plot it; its summary."""
    try:
        run = run_json(client.start_run(config_text))
    except Exception as exc:  # InvalidInput in process, TrainerError over gRPC
        fail(f"the run was refused: {getattr(exc, 'message', exc)}", code=2)
    err.print(f"run [bold]{run['id']}[/]: {run['total_steps']} steps")
    steps = follow(client, run["id"], run["total_steps"], err, cancel_on_interrupt=True)
    final = run_json(client.get_run(run["id"]))
    result = final.get("result") or {}
    return align_summary(final, result, _plot(steps, result, plot, err))


def follow(client: Any, run_id: str, total: int, err: Any, cancel_on_interrupt: bool) -> list[Any]:
    """Show a run's events as progress bars on stderr until it ends; its step metrics.

    Ctrl-C cancels the run when ``cancel_on_interrupt`` (the run belongs to this command),
    otherwise it only stops watching.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lift.client import TrainerError
    from lift.runs import StepMetrics

    steps: list[StepMetrics] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("train", total=total, info="")
        evals = bar.add_task("eval", total=1, info="", visible=False)
        try:
            for e in client.watch(run_id):
                if e.kind == "step":
                    m = StepMetrics.from_json(e.data, e.step)
                    steps.append(m)
                    info = f"reward {m.reward:.3f} loss {m.loss:.3f}"
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
        except KeyboardInterrupt:
            if cancel_on_interrupt:
                client.cancel_run(run_id)
                err.print(f"[yellow]cancelled run {run_id}[/]")
            raise typer.Exit(130) from None
        except TrainerError as exc:
            fail(f"lost the trainer: {exc}")
    return steps


def _plot(steps: list[Any], result: dict[str, Any], path: Path, err: Any) -> Path | None:
    """The run's PNG plot, or None without steps or without matplotlib (the trainer extra)."""
    if not steps:
        return None
    try:
        from lift.services.trainer.plot import plot_run

        return plot_run(steps, result, path)
    except ModuleNotFoundError as exc:
        # markup=False: rich would read "[trainer]" as a style tag and drop it
        err.print(
            f"no plot: {exc.name} is not installed (pip install 'lift-suite[trainer]')",
            style="yellow",
            markup=False,
        )
        return None


def align_summary(run: dict[str, Any], result: dict[str, Any], png: Path | None) -> dict[str, Any]:
    """What `lift align` reports: the run's end state, held-out rewards, guards, adapter."""
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


ServerOpt = Annotated[str, typer.Option(help="Trainer gRPC address (host:port)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of text")]


@contextlib.contextmanager
def _trainer(server: str, creds: Any = None) -> Iterator[Any]:
    """A connected TrainerClient; a refused call ends the command with its message."""
    from lift.client import TrainerClient, TrainerError

    try:
        with TrainerClient(server, credentials=creds) as client:
            yield client
    except TrainerError as exc:
        fail(f"trainer {server}: {exc}")


@runs_app.command("list")
def runs_list(
    server: ServerOpt = DEFAULT_TRAINER,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most runs to list, newest first")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List the trainer's runs, newest first."""
    with _trainer(server, credentials(token, tls, ca_file, client_cert, client_key)) as client:
        runs = [run_json(r) for r in client.list_runs(limit=limit)]
    if as_json:
        sys.stdout.write(json.dumps(runs) + "\n")
        return
    from rich.console import Console

    from lift.cli.render import print_runs

    print_runs(Console(), runs)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = DEFAULT_TRAINER,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: state, progress, config name, and its result when it has one."""
    with _trainer(server, credentials(token, tls, ca_file, client_cert, client_key)) as client:
        run = run_json(client.get_run(run_id))
    if as_json:
        sys.stdout.write(json.dumps(run) + "\n")
        return
    from rich.console import Console

    from lift.cli.render import print_run

    print_run(Console(), run, align_summary(run, run.get("result") or {}, None))


@runs_app.command("watch")
def runs_watch(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = DEFAULT_TRAINER,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow a run until it ends (Ctrl-C stops watching, not the run); exit 1 unless it succeeds.

    With --json, every event is one JSON line on stdout.
    """
    err = _stderr_console()
    with _trainer(server, credentials(token, tls, ca_file, client_cert, client_key)) as client:
        if as_json:
            try:
                for e in client.watch(run_id):
                    sys.stdout.write(json.dumps(e.to_json()) + "\n")
                    sys.stdout.flush()
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
        else:
            run = run_json(client.get_run(run_id))
            follow(client, run_id, run["total_steps"], err, cancel_on_interrupt=False)
        run = run_json(client.get_run(run_id))
    if not as_json:
        from rich.console import Console

        from lift.cli.render import print_align_summary

        print_align_summary(Console(), align_summary(run, run.get("result") or {}, None))
    if run["state"] != "succeeded":
        raise typer.Exit(1)


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = DEFAULT_TRAINER,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running run (a finished run stays as it is)."""
    with _trainer(server, credentials(token, tls, ca_file, client_cert, client_key)) as client:
        run = run_json(client.cancel_run(run_id))
    if as_json:
        sys.stdout.write(json.dumps(run) + "\n")
    else:
        typer.echo(f"run {run['id']}: {run['state']}")
