"""Reading ``slimserve.toml``: the one place the file is parsed.

Every mistake becomes a ConfigError naming the file, the key and what is expected, before any
slow step runs. A key the schema does not know, in any table (``[deploy]`` and the tensor specs
of ``[export]`` included), is an error that suggests the closest valid key. Paths in the file
are relative to the project folder.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from slimserve.build.config.schema import BuildConfig
from slimserve.build.config.task_options import TASK_OPTIONS
from slimserve.build.errors import ConfigError
from slimserve.build.paths import CONFIG_FILE

Location = tuple[str | int, ...]


def load_config(folder: Path, overrides: Mapping[str, Any] | None = None) -> BuildConfig:
    """Read ``folder/slimserve.toml``; ``overrides`` replace keys (``"section.key": value``,
    from CLI flags) before validation."""
    path = Path(folder) / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: a project folder needs a {CONFIG_FILE}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc}") from None
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        target = raw.setdefault(section, {}) if section else raw
        target[key] = value
    problems = [
        f"  {_dotted((*where, key))}: {unknown_key_message(key, valid)}"
        for where, key, valid in [*unknown_keys(BuildConfig, raw), *_unknown_task_options(raw)]
    ]
    try:
        config = BuildConfig.model_validate({**raw, "root": Path(folder).resolve()})
    except ValidationError as exc:
        problems += _describe(exc)
    if problems:
        raise ConfigError(f"{path} is invalid:\n" + "\n".join(problems))
    return config


def _unknown_task_options(raw: Mapping[str, Any]) -> Iterator[tuple[Location, str, list[str]]]:
    """Keys of ``[task_options]`` the task does not take (the table's type depends on ``task``)."""
    options, task = raw.get("task_options"), raw.get("task", "raw")
    if isinstance(options, Mapping) and isinstance(task, str) and task in TASK_OPTIONS:
        yield from unknown_keys(TASK_OPTIONS[task], options, ("task_options",))


def unknown_key_message(key: str, valid: Iterable[str]) -> str:
    """``unknown key (did you mean 'x'?)``, or the valid keys when none is close."""
    valid = sorted(valid)
    if not valid:
        return "unknown key (this table takes no keys)"
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(valid)})"


def valid_keys(model: type[BaseModel]) -> list[str]:
    """The keys a table of ``model`` may hold (fields marked ``exclude`` are not file keys)."""
    return [field.alias or name for name, field in model.model_fields.items() if not field.exclude]


def unknown_keys(
    model: type[BaseModel], raw: Mapping[str, Any], where: Location = ()
) -> Iterator[tuple[Location, str, list[str]]]:
    """(location, unknown key, valid keys) for every key of ``raw`` and its nested tables that
    ``model`` does not declare. Independent of each model's ``extra`` setting: the manifest's
    models allow extra keys for forward compatibility, the file does not."""
    fields = {field.alias or name: field for name, field in model.model_fields.items() if not field.exclude}
    for key, value in raw.items():
        field = fields.get(key)
        if field is None:
            yield where, key, valid_keys(model)
            continue
        for nested, table, at in _tables(field.annotation, value, (*where, key)):
            yield from unknown_keys(nested, table, at)


def _tables(annotation: Any, value: Any, where: Location) -> Iterator[tuple[type[BaseModel], Mapping[str, Any], Location]]:
    """The tables inside ``value`` that ``annotation`` says are models (through Optional,
    Annotated, lists and tuples; free-form dicts such as task_options are not checked)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _tables(get_args(annotation)[0], value, where)
    elif origin in (Union, types.UnionType):
        for member in get_args(annotation):
            yield from _tables(member, value, where)
    elif origin in (list, tuple, Sequence) and isinstance(value, list):
        item_type = get_args(annotation)[0]
        for index, item in enumerate(value):
            yield from _tables(item_type, item, (*where, index))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, Mapping):
        yield annotation, value, where


def _dotted(where: Location) -> str:
    return ".".join(str(part) for part in where)


# Checks across fields (model validators) name their key relative to where they ran.
_KEYED = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)*: ")


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            continue  # reported by unknown_keys, with a suggestion
        where = ".".join(str(part) for part in error["loc"])
        for message in error["msg"].removeprefix("Value error, ").split("\n"):
            message = message.strip()
            if _KEYED.match(message):
                lines.append(f"  {where + '.' if where else ''}{message}")
            else:
                lines.append(f"  {where or '(top level)'}: {message}")
    return lines
