"""`lift`: serve the services, critique videos, and developer tools.

This module only wires the command tree; each service's commands live in their own module
(`lift.cli.critic`, `.generator`, `.trainer`, `.feedback`, `.hra`, `.prefs`, `.up`, `.debug`).
Heavy modules are imported inside commands so that `lift --help` is instant.
"""

from __future__ import annotations

import typer

from lift.cli.auth import auth_app
from lift.cli.critic import compare, critic_app, critique
from lift.cli.debug import debug_app
from lift.cli.feedback import feedback_app
from lift.cli.generator import generate, generator_app
from lift.cli.hra import hra_app
from lift.cli.prefs import prefs_app
from lift.cli.prompts import prompts_app
from lift.cli.trainer import align, runs_app, trainer_app
from lift.cli.up import up

app = typer.Typer(
    help="LiFT suite: text-to-video critic, generator and trainer.", no_args_is_help=True
)
app.add_typer(critic_app, name="critic")
app.command("critique")(critique)
app.command("compare")(compare)
app.add_typer(generator_app, name="generator")
app.command("generate")(generate)
app.add_typer(trainer_app, name="trainer")
app.command("align")(align)
app.add_typer(runs_app, name="runs")
app.command("up")(up)
app.add_typer(feedback_app, name="feedback")
app.add_typer(hra_app, name="hra")
app.add_typer(prefs_app, name="prefs")
app.add_typer(prompts_app, name="prompts")
app.add_typer(debug_app, name="debug")
app.add_typer(auth_app, name="auth")


if __name__ == "__main__":
    app()
