"""`lift auth add`: make a bearer token and store only its hash in the tokens file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lift.cli.common import fail

auth_app = typer.Typer(
    help="Bearer tokens for the services (LIFT_AUTH_FILE).", no_args_is_help=True
)


@auth_app.command("add")
def auth_add(
    name: Annotated[str, typer.Argument(help="Who holds the token (letters, digits, . _ @ -)")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="What it may do, repeatable: judge, generate, adapters, runs, rate, admin",
        ),
    ],
    file: Annotated[
        Path,
        typer.Option(
            "--file", envvar="LIFT_AUTH_FILE", help="The tokens file (created with mode 0600)"
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace (revoke) an existing token of this name")
    ] = False,
) -> None:
    """Make a token for NAME and print it once (the last word of the output).

    Only its SHA-256 is written to the file; the services re-read the file within a
    second, so no restart is needed. Remove the entry to revoke the token.
    """
    from pydantic import ValidationError

    from lift.auth import AuthFileError, Scope, add_token

    try:
        scopes = [Scope(s.strip().lower()) for s in scope]
    except ValueError:
        fail(f"unknown scope in {scope}; use {', '.join(s.value for s in Scope)}", code=2)
    try:
        token = add_token(file, name, scopes, replace=replace)
    except AuthFileError as exc:
        fail(str(exc), code=2)
    except ValidationError as exc:
        fail(f"invalid token entry: {exc.errors()[0]['msg']}", code=2)
    except ValueError as exc:
        fail(str(exc), code=2)
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror}", code=1)
    typer.echo(
        f"token {name!r} ({', '.join(s.value for s in scopes)}) stored as a hash in {file}; "
        "it is shown only this once, keep it secret:"
    )
    typer.echo(token)
