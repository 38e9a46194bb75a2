"""What a ``slimserve synth | deploy | diff | destroy | local | invoke TARGET`` is about: the
built manifest and the stack options, resolved one way for every command.

Options come from ``[deploy]`` in the example's slimserve.toml, then ``--option KEY=VALUE``,
then the named flags (``--api``, ``--auth``, ``--package``): explicit beats file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from slimserve.build.errors import TargetError

__all__ = ["TargetError", "parse_value", "stack_inputs"]


def parse_value(raw: str) -> object:
    """``--option`` values: true/false, integers and floats are typed; the rest stays text."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def stack_inputs(
    target: Path, option: Iterable[str], flags: Mapping[str, object]
) -> tuple[Path, dict[str, object]]:
    """The manifest of a built target and the stack options (file, then --option, then flags)."""
    from slimserve.build.errors import LocalRunError
    from slimserve.build.local.run import resolve_target

    try:
        artifacts = resolve_target(target)
    except LocalRunError as exc:
        raise TargetError(str(exc)) from exc
    options: dict[str, object] = {}
    config_file = Path(target) / "slimserve.toml"
    if config_file.is_file():
        try:
            deploy = tomllib.loads(config_file.read_text(encoding="utf-8")).get("deploy", {})
        except tomllib.TOMLDecodeError as exc:
            raise TargetError(f"{config_file} is not valid TOML: {exc}") from exc
        options.update(deploy)
    for item in option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TargetError(f"--option takes KEY=VALUE, got {item!r}")
        options[key.strip()] = parse_value(value.strip())
    options.update({key: value for key, value in flags.items() if value is not None})
    return artifacts.folder / "manifest.json", options
