"""The ``slimserve`` command line: ``main`` (the app, the command table and the exit codes),
``common`` (shared options and error printing), ``commands`` (build, local, invoke, bench) and
``deploying`` (synth, deploy, diff, destroy)."""

from slimserve.build.cli.main import app, main

__all__ = ["app", "main"]
