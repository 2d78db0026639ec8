"""Helpers the service modules of the CLI share: settings from flags, serving, missing extras.

Everything heavy is imported inside the functions so that importing the CLI (and `lift --help`)
stays instant.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

S = TypeVar("S")

# Top-level modules that only an extra installs (the base install has none of them).
OPTIONAL_MODULES = frozenset(
    {
        # serve (every service): fronts, reflection, metrics, video
        "av",
        "cv2",
        "fastapi",
        "fastapi_offline",
        "grpc_reflection",
        "multipart",
        "prometheus_client",
        "python_multipart",
        "safetensors",
        "torch",
        "uvicorn",
        # critic, generator, trainer
        "PIL",
        "accelerate",
        "diffusers",
        "jinja2",
        "matplotlib",
        "onnx",
        "onnxruntime",
        "peft",
        "tokenizers",
        "transformers",
        "tritonclient",
        # feedback
        "sqlalchemy",
    }
)


# How a remote command reaches its server: every command with a server takes these.
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="LIFT_TOKEN",
        show_default=False,
        help="Bearer token for the server [env LIFT_TOKEN; prefer the env: flags show in ps]",
    ),
]
TlsOpt = Annotated[
    bool,
    typer.Option("--tls", envvar="LIFT_TLS", help="Connect with TLS, verifying the server"),
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="LIFT_CA_FILE",
        help="PEM CA the server's certificate must chain to (implies --tls) [system roots]",
    ),
]
ClientCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--client-cert", envvar="LIFT_CLIENT_CERT", help="PEM client certificate (mutual TLS)"
    ),
]
ClientKeyOpt = Annotated[
    Path | None,
    typer.Option("--client-key", envvar="LIFT_CLIENT_KEY", help="PEM key of --client-cert"),
]


def credentials(
    token: str | None,
    tls: bool = False,
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> Any:
    """The client Credentials of a remote command's flags; unreadable files exit with code 2."""
    from lift.clients.base import Credentials

    try:
        return Credentials.create(token, tls, ca_file, client_cert, client_key)
    except (OSError, ValueError) as exc:
        fail(f"cannot set up the connection: {exc}", code=2)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a red message on stderr and exit with ``code``."""
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def needs_extra(extra: str, what: str) -> Iterator[None]:
    """Turn a missing optional dependency into one line naming the extra that installs it.

    ``extra`` is the extra this command belongs to (``critic``, ``generator``, ``trainer``).
    Any other missing module is a bug and keeps its traceback.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in OPTIONAL_MODULES:
            raise
        fail(
            f"{what} needs the optional dependency {top!r}, which is not installed; "
            f"install it with: pip install 'lift-suite[{extra}]'",
            code=3,
        )


def settings_or_exit(name: str, factory: Callable[..., S], overrides: Mapping[str, Any]) -> S:
    """Build a service's settings from the flags that were given (unset flags leave env/defaults).

    Invalid values exit with code 2 and one line per problem (the setting and what is wrong
    with it) instead of a traceback or pydantic's report with its input dumps and links.
    """
    from pydantic import ValidationError

    try:
        return factory(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail(f"invalid {name} settings:\n" + "\n".join(_problems(exc)), code=2)


def _problems(exc: Any) -> list[str]:
    """``  setting: message`` for each error of a pydantic ValidationError."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"  {where}: {message}" if where else f"  {message}")
    return lines


def run_service(name: str, settings: Any, build: Callable[[Any], Any]) -> None:
    """Run one service (gRPC + HTTP in this process) until it is stopped.

    ``build(settings)`` returns a :class:`lift.runner.ServiceRunner`; an address in use or a
    model that does not load ends the command with exit code 1 and one line on stderr.
    """
    import asyncio

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        await build(settings).run_forever()

    try:
        asyncio.run(main())
    except (OSError, ValueError) as exc:
        fail(f"{name} could not start: {exc}")
