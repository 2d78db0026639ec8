"""`python -m lift.cli`: the same as the `lift` command."""

from lift.cli.main import app

app()
