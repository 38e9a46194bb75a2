"""The ``slimserve`` command: the Typer app, its commands (one table), and the one place where
an error becomes a message and an exit code."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from slimserve.build.cli import commands, deploying, releases
from slimserve.build.cli.common import err, print_error
from slimserve.build.errors import (
    EXIT_FAILURE,
    EXIT_GATE_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    SlimserveBuildError,
)

EXIT_INTERRUPTED = 130

EXIT_CODES = f"""Exit codes: {EXIT_OK} success;
{EXIT_FAILURE} runtime failure (a step could not run: install, bundle, the CDK CLI, the function; invoke --url got a non-2xx answer; an internal error);
{EXIT_USAGE} usage or configuration error (command line, slimserve.toml, target, stack options, missing AWS credentials or terminal, a bundle whose signature does not verify, a refused rollback);
{EXIT_GATE_FAILED} the accuracy gate failed (nothing shipped);
{EXIT_INTERRUPTED} interrupted (Ctrl-C)."""


def exit_for(exc: Exception) -> tuple[int, str]:
    """The exit code and the one message an exception stands for."""
    from slimserve.handler.manifest import ManifestError
    from slimserve.infra.options import OptionsError

    if isinstance(exc, SlimserveBuildError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (ManifestError, OptionsError)):
        return EXIT_USAGE, str(exc)
    return EXIT_FAILURE, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the trace)"


class _Commands(TyperGroup):
    """Runs the chosen command; any exception it raises ends here."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: --help, usage errors (exit 2), fail()
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            code, message = exit_for(exc)
            if ctx.params.get("debug"):
                err.print_exception()
            print_error(message)
            raise typer.Exit(code) from None


app = typer.Typer(
    name="slimserve",
    cls=_Commands,
    help="Turn a trained model into a small, fast, safe HTTPS inference API on AWS Lambda.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full trace when a command fails")] = False,
) -> None:
    pass  # --debug is read by _Commands.invoke


for _command in (
    commands.build,
    commands.local,
    commands.invoke,
    deploying.synth,
    deploying.deploy,
    deploying.diff,
    deploying.destroy,
    releases.versions,
    releases.rollback,
    commands.bench,
):
    app.command()(_command)


def main() -> None:
    app(prog_name="slimserve")
