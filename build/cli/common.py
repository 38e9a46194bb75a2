"""What the ``slimserve`` commands share: the consoles, the one way an error is printed, and
the option definitions (stack options, targets, emulation modes) declared once.

Imports only typer and rich at module level, so ``slimserve --help`` needs nothing else.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from slimserve.build.errors import EXIT_USAGE

if TYPE_CHECKING:
    from slimserve.build.deploy.targets import StackTarget

err = Console(stderr=True)
out = Console()

DEFAULT_TARGET = Path("examples/digits")


def print_error(message: str) -> None:
    # escape: messages quote patterns like [a-z0-9] that rich would take for markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command: ``message`` on stderr, exit ``code`` (default 2, a usage error)."""
    print_error(message)
    raise typer.Exit(code)


# --- options shared by several commands --------------------------------------------------------

_OPTION_HELP = (
    "Stack option KEY=VALUE (repeatable), e.g. api=rest auth=api_key snapstart=false; "
    "lists as a,b or a JSON list: jwt_audience=a,b"
)

TargetArg = Annotated[
    Path, typer.Argument(help="Project folder (slimserve.toml), build output folder or lambda.zip")
]
OptionOption = Annotated[list[str], typer.Option("--option", "-o", help=_OPTION_HELP)]
ApiOption = Annotated[Optional[str], typer.Option(help="http (default) or rest")]
AuthOption = Annotated[
    Optional[str], typer.Option(help="iam (default), jwt, api_key or none (anonymous: warned)")
]
PackageOption = Annotated[Optional[str], typer.Option(help="zip (default), s3 or image")]
TemplateOption = Annotated[
    Optional[Path],
    typer.Option(
        "--template",
        help="Emulate this synthesized CloudFormation template instead of synthesizing one",
    ),
]
NoTemplateOption = Annotated[
    bool,
    typer.Option(
        "--no-template",
        help="Do not synthesize (no Node needed): follow the manifest's defaults, not the stack's template",
    ),
]
OutOption = Annotated[
    Optional[Path], typer.Option("--out", help="Cloud assembly folder (default: <build folder>/cdk.out)")
]


@dataclass(frozen=True)
class StackArgs:
    """The target and stack options a command was given (see slimserve.build.deploy.targets for
    how they combine with the project's [deploy] table)."""

    target: Path
    option: Sequence[str] = ()
    api: str | None = None
    auth: str | None = None
    package: str | None = None
    out_dir: Path | None = None
    # Lowest-precedence values a command supplies for itself (see ``local``).
    defaults: Mapping[str, object] | None = None

    def flags(self) -> dict[str, object]:
        return {"api": self.api, "auth": self.auth, "package": self.package}

    def given(self) -> list[str]:
        """The stack options given on the command line, as the user typed them."""
        named = [f"--{name}" for name, value in self.flags().items() if value is not None]
        return named + (["--option"] if self.option else [])

    def resolve(self) -> StackTarget:
        from slimserve.build.deploy.targets import resolve_stack

        return resolve_stack(self.target, self.option, self.flags(), self.defaults)


_STACK_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, annotation, default in (
        ("target", TargetArg, DEFAULT_TARGET),
        ("out_dir", OutOption, None),
        ("option", OptionOption, []),
        ("api", ApiOption, None),
        ("auth", AuthOption, None),
        ("package", PackageOption, None),
    )
]


def stack_command(func: Callable[..., None]) -> Callable[..., None]:
    """Turn ``func(stack: StackArgs, **own_options)`` into a command that takes the shared
    stack parameters (target, --out, --option, --api, --auth, --package) and then its own."""
    own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
    shared = [parameter.name for parameter in _STACK_PARAMETERS]

    @functools.wraps(func)
    def command(**kwargs: object) -> None:
        values = {name: kwargs.pop(name) for name in shared}
        func(StackArgs(**values), **kwargs)  # type: ignore[arg-type]

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*_STACK_PARAMETERS, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
    )
    return command
