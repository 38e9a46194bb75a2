"""Reading ``manifest.json`` without pydantic: what the handler serves from.

The schema is ``handler/manifest.py`` (pydantic), and only that: the build validates every
manifest with it and ``Manifest.to_json`` stamps the file with ``validated_sha256``, the sha256
of the canonical JSON of every other field. The handler reads the file, recomputes that digest
and, when it matches, serves from the JSON as it is (``ManifestView``: attribute access, the
model's field names), without importing pydantic: pydantic's import alone cost more than the
rest of the handler's own imports together (about 70 ms of a cold start whose floor is ~170).
A manifest without the stamp, or edited after the build, is validated by the schema as before
(pydantic imported then), with the same messages.

Pydantic-free on purpose: tests/handler/test_imports.py holds the handler's cold start to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = 1
MANIFEST_FILE = "manifest.json"
STAMP_FIELD = "validated_sha256"


class ManifestError(Exception):
    """The manifest is missing or does not match the schema."""


def stamp_of(document: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of every field but the stamp itself."""
    fields = {key: value for key, value in document.items() if key != STAMP_FIELD}
    # Deterministic for anything json.loads returns (NaN included), so reader and writer agree.
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def read_manifest_json(path: Path) -> dict[str, Any]:
    """The file as a JSON object of the supported schema; every failure a ManifestError."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest not found: {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"manifest must be a JSON object: {path}")
    if raw.get("schema") != MANIFEST_SCHEMA:
        raise ManifestError(
            f"manifest schema {raw.get('schema')!r} is not supported (expected {MANIFEST_SCHEMA}): {path}"
        )
    return raw


class ManifestView(Mapping[str, Any]):
    """A validated manifest (or any object inside it), read-only: ``view.runtime.limits.max_batch``
    as on the pydantic model, and a Mapping (``view.files.items()``, ``view.task_options.get``).
    Objects inside are views too; lists stay lists."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_fields", {key: _wrap(value) for key, value in fields.items()})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"the manifest has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a manifest is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"ManifestView({self._fields!r})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values again (views unwrapped)."""
        return {key: _unwrap(value) for key, value in self._fields.items()}


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return ManifestView(value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, ManifestView):
        return value.to_dict()
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return value


def load_manifest_view(path: Path) -> ManifestView:
    """The manifest the handler serves from: the build's validated JSON when its stamp holds,
    else validated by the schema now (same ManifestError messages as ``load_manifest``)."""
    raw = read_manifest_json(path)
    stamp = raw.get(STAMP_FIELD)
    if isinstance(stamp, str) and stamp == stamp_of(raw):
        return ManifestView(raw)
    from slimserve.handler.manifest import validate_manifest

    return ManifestView(validate_manifest(raw, path).model_dump(mode="json", by_alias=True))
