"""One alignment run from a config file, without the trainer service: one process or several.

    python -m lift.services.trainer.launch run.yaml --workdir runs/mine
    accelerate launch --num_processes 8 -m lift.services.trainer.launch run.yaml --workdir runs/mine

Under ``accelerate launch`` (or ``torchrun``) every process runs this module: each
generates and scores its share of a step's videos (online) or takes its share of
the dataset's clips (offline), and the gradients are averaged (data parallel). A
step's timesteps and noise are drawn for the whole step and each process takes its
clips' rows, and each process's loss is scaled so that the average is the loss over
the whole step: N processes train what one process would, up to the order of float
additions. The main process publishes adapters (every process then samples from
the version it published), evaluates, checkpoints to ``--workdir/checkpoints`` and
writes the adapter to ``--workdir/adapter``; a launch into a workdir that holds
checkpoints resumes from the newest.

What the run may read: the config's paths must lie under LIFT_TRAINER_DATA_ROOTS
(unset: the working directory and the config's directory); the endpoints it may
call, LIFT_TRAINER_ALLOWED_ENDPOINTS (unset: any, as for ``lift align``). The main
process prints progress on stderr and the run's result as one JSON object on stdout
(also written to ``--workdir/result.json``) and appends its events, one JSON object a
line, to ``--workdir/events.jsonl``. Exit status: 0 succeeded, 1 failed or
cancelled (the reason on stderr), 2 a config or option to fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from lift.errors import Cancelled, InvalidInput, LiftError

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lift.services.trainer.launch",
        description="Run one alignment run from a config (YAML/JSON) in this process, or in "
        "each process of `accelerate launch` (data parallel).",
    )
    p.add_argument("config", type=Path, help="run config (YAML or JSON)")
    p.add_argument(
        "--workdir",
        type=Path,
        required=True,
        help="where checkpoints, the adapter and result.json go (a resumed run: the same)",
    )
    p.add_argument("--steps", type=int, help="override the config's steps")
    p.add_argument("--run-id", help="the run's id (the namespace of its adapter versions)")
    return p


def _is_main() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def main(argv: list[str] | None = None) -> int:
    """Run the run; the exit status."""
    args = _parser().parse_args(argv)
    main_process = _is_main()
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from pydantic import ValidationError

    from lift.services.trainer.config import parse_run_config
    from lift.services.trainer.loop import AlignmentLoop, RunFailed
    from lift.services.trainer.manager import RunManager, default_deps, new_run_id
    from lift.services.trainer.remote import client_credentials
    from lift.services.trainer.settings import TrainerSettings

    overrides: dict[str, Any] = {"data_dir": args.workdir / "trainer"}
    if not os.environ.get("LIFT_TRAINER_DATA_ROOTS"):
        overrides["data_roots"] = [Path.cwd(), args.config.resolve().parent]
    if not os.environ.get("LIFT_TRAINER_ALLOWED_ENDPOINTS"):
        overrides["allowed_endpoints"] = ["*"]
    stop = threading.Event()
    try:
        settings = TrainerSettings(**overrides)
        manager = RunManager(settings)  # its checks and paths; no database, no workers
        try:
            text = args.config.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(
                f"cannot read the run config {args.config}: {exc.strerror}"
            ) from None
        config = parse_run_config(text, manager.config_defaults())
        if args.steps is not None:
            config = parse_run_config({**config.to_json(), "steps": args.steps})
        manager.check_access(config)
        model_dir = manager.model_dir(config)
    except ValidationError as exc:
        print(f"error: invalid trainer settings (LIFT_TRAINER_*): {exc}", file=sys.stderr)
        return 2
    except InvalidInput as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2

    events = args.workdir / "events.jsonl"

    def emit(kind: str, step: int, message: str, data: dict[str, Any]) -> None:
        if not main_process:
            return
        if kind != "eval_progress":
            print(f"[{kind}] {message}", file=sys.stderr, flush=True)
        event = {"kind": kind, "step": step, "message": message, "data": data}
        with events.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    args.workdir.mkdir(parents=True, exist_ok=True)
    deps = default_deps(config, stop, client_credentials(settings))
    run_id = args.run_id or new_run_id()
    try:
        loop = AlignmentLoop(
            run_id,
            config,
            args.workdir,
            model_dir,
            deps,
            emit,
            stop,
            access=manager.access,
            keep_checkpoints=settings.keep_checkpoints,
        )
        result = loop.run()
        if loop.acc.num_processes > 1:
            # No process leaves while another may still talk to it, then all leave the group
            # together: a gloo peer whose partner exits inside the group aborts ("terminate
            # called without an active exception"), failing a run that had finished.
            loop.acc.wait_for_everyone()
            loop.acc.end_training()
    except Cancelled:
        print("the run was cancelled", file=sys.stderr)
        return 1
    except (LiftError, RunFailed) as exc:
        print(f"the run failed: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if deps is not None:
            deps.close()
    if main_process:
        text = json.dumps({"run_id": run_id, **result}, sort_keys=True)
        (args.workdir / "result.json").write_text(text + "\n", encoding="utf-8")
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
