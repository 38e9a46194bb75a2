"""docs/config.md, every key of ``slimserve.toml``, rendered from the schema (``schema.py``) so the
two cannot drift: a test compares the committed file with ``render()``.

    python -m slimserve.build.config.docs > docs/config.md        (scripts/config-docs does this)
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from slimserve.build.config.schema import BuildConfig
from slimserve.build.config.task_options import TASK_OPTIONS

HEADER = """# slimserve.toml: every key

<!-- Generated from build/config/schema.py by scripts/config-docs; do not edit by hand. -->

Paths are relative to the project folder (the one holding `slimserve.toml`). A key the schema does
not know, in any table, is an error that suggests the closest valid key; so is a key of
`[task_options]` the task does not take. The smallest file for an existing ONNX classifier:

```toml
name = "wine"
task = "classification"
[source]
onnx = "model.onnx"
[validation]
data = "data.py:heldout"      # returns ({input name: array}, labels)
metric = "accuracy"
tolerance = 0.01
```

See [models.md](models.md) (bringing a model), [tasks.md](tasks.md) (what each task serves) and
[data.md](data.md) (what `data.py` returns).
"""

# Tables documented elsewhere in full: only their keys are listed here.
_ELSEWHERE = {"deploy": "The stack options, each described in [infra/README.md](../infra/README.md)"}


def _type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type(get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{value!r}`".replace("'", '"') for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        text = " or ".join(_type(member) for member in members)
        return text + (" (optional)" if len(members) < len(get_args(annotation)) else "")
    if origin in (list, tuple):
        return f"list of {_type(get_args(annotation)[0])}"
    if origin is dict:
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least", "max_length": "at most"}
    parts = []
    for item in field.metadata:
        for attribute, word in words.items():
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{word} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    """The default as it would be written in the file (TOML spells like JSON here)."""
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined or isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"


def _nested(annotation: Any) -> type[BaseModel] | None:
    origin = get_origin(annotation)
    if origin in (Annotated, Union, types.UnionType, list, tuple):
        for member in get_args(annotation):
            found = _nested(member)
            if found is not None:
                return found
        return None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
    for name, field in model.model_fields.items():
        if not field.exclude:
            yield field.alias or name, field


def _table(title: str, model: type[BaseModel], intro: str) -> Iterator[str]:
    """One section per table, then its sub-tables (depth first)."""
    yield f"\n## `{title}`\n" if title else "\n## Top level\n"
    if intro:
        yield intro.replace("``", "`") + "\n"
    if not list(_fields(model)):
        yield "No keys: any is an error."
        return
    yield "| key | type | default | what |"
    yield "|---|---|---|---|"
    nested = []
    for key, field in _fields(model):
        bounds = _bounds(field)
        kind = _type(field.annotation) + (f" ({bounds})" if bounds else "")
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        yield f"| `{key}` | {kind} | {_default(field)} | {description} |"
        child = _nested(field.annotation)
        if child is not None:
            nested.append((f"{title}.{key}" if title else key, child, field))
    for path, child, field in nested:
        if path in _ELSEWHERE:
            yield f"\n## `{path}`\n\n{_ELSEWHERE[path]}: " + ", ".join(f"`{key}`" for key, _ in _fields(child)) + "."
            continue
        if path == "task_options":
            continue
        suffix = "[N]" if get_origin(field.annotation) in (list, tuple) or "list" in _type(field.annotation) else ""
        yield from _table(path + suffix, child, " ".join((child.__doc__ or "").strip().split("\n\n")[0].split()))


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    lines += _table("", BuildConfig, "")
    lines.append("\n## `task_options`\n")
    lines.append("One table per task (`task = ...`): the task's options, checked when the file is read.")
    for task, model in TASK_OPTIONS.items():
        lines += _table(f"task_options ({task})", model, " ".join((model.__doc__ or "").split()))
    text = "\n".join(lines) + "\n"
    return text.replace("## `task_options (", "### `task = \"").replace(")`\n", "\"`\n")


def missing_descriptions() -> list[str]:
    """Keys without a description (the test keeps this empty)."""
    missing = []

    def walk(model: type[BaseModel], where: str) -> None:
        for key, field in _fields(model):
            path = f"{where}.{key}" if where else key
            if path.startswith("deploy."):
                continue  # infra's own model, documented in infra/README.md
            if not field.description:
                missing.append(path)
            child = _nested(field.annotation)
            if child is not None:
                walk(child, path)

    walk(BuildConfig, "")
    for task, model in TASK_OPTIONS.items():
        walk(model, f"task_options ({task})")
    return missing


if __name__ == "__main__":
    sys.stdout.write(render())
