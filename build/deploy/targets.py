"""What a ``slimserve local | invoke | synth | deploy | diff | destroy TARGET`` is about: the
built artifacts and the stack options, resolved one way for every command.

A target is a build output folder (``lambda.zip`` + ``manifest.json``), the zip itself, or a
project folder (``slimserve.toml``; its build is ``<project>/dist/<name>/``). The stack options
are, key by key, the first of: the named flags (``--api``, ``--auth``, ``--package``),
``--option KEY=VALUE``, the project's ``[deploy]`` table, the defaults of
``slimserve.infra.options.StackOptions``. A build folder or a zip has no ``[deploy]`` table.
"""

from __future__ import annotations

import json
import tempfile
import types
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from slimserve.build import paths
from slimserve.build.config import BuildConfig, load_config, unknown_key_message
from slimserve.build.errors import TargetError
from slimserve.handler.manifest import MANIFEST_FILE, Manifest, ManifestError, load_manifest
from slimserve.infra.options import StackOptions, parse_options

__all__ = [
    "BuildArtifacts",
    "StackTarget",
    "TargetError",
    "parse_option_items",
    "resolve_stack",
    "resolve_target",
    "stack_options",
]

_ZIP_MANIFEST = f"model/{MANIFEST_FILE}"


@dataclass(frozen=True)
class BuildArtifacts:
    folder: Path
    zip_path: Path
    manifest: Manifest


@dataclass(frozen=True)
class StackTarget:
    """A built target and the stack options every command uses for it."""

    artifacts: BuildArtifacts
    options: StackOptions
    # The project's [signing] public_key (resolved), when the target is a project folder.
    signing_public_key: Path | None = None

    @property
    def manifest_path(self) -> Path:
        return self.artifacts.folder / MANIFEST_FILE


def resolve_target(target: Path) -> BuildArtifacts:
    """The build a target names; TargetError when there is none (or it is unreadable)."""
    return _resolve(Path(target))[0]


def resolve_stack(
    target: Path,
    option: Iterable[str] = (),
    flags: Mapping[str, object] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> StackTarget:
    """The build and its stack options (flags, then --option, then [deploy], then ``defaults``,
    then the options model's defaults). Raises TargetError (exit 2) and OptionsError (exit 2)
    with one-line messages."""
    artifacts, config = _resolve(Path(target))
    public_key = config.signing.public_key if config is not None else None
    return StackTarget(
        artifacts,
        stack_options(config, option, flags or {}, defaults),
        config.path(public_key) if config is not None and public_key else None,
    )


def stack_options(
    config: BuildConfig | None,
    option: Iterable[str],
    flags: Mapping[str, object],
    defaults: Mapping[str, object] | None = None,
) -> StackOptions:
    """Merge the sources of stack options key by key and validate the result once."""
    merged: dict[str, Any] = dict(defaults or {})
    if config is not None:
        # Only the keys the file sets: an unset key must not hide --option or a flag.
        merged.update(config.deploy.model_dump(exclude_unset=True))
    merged.update(parse_option_items(option))
    merged.update({key: value for key, value in flags.items() if value is not None})
    return parse_options(merged)


def parse_option_items(items: Iterable[str]) -> dict[str, object]:
    """``--option KEY=VALUE`` items. List-valued options (``jwt_audience``, ``api_keys``) take
    ``a,b`` or a JSON list; other values stay text for the options model to convert
    (``true``, ``2048``), so its messages name the option and the expected type."""
    fields = StackOptions.model_fields
    options: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise TargetError(f"--option takes KEY=VALUE, got {item!r}")
        if key not in fields:
            raise TargetError(f"--option {key}: {unknown_key_message(key, fields)}")
        options[key] = _list_value(key, value) if _is_list(fields[key].annotation) else value
    return options


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_list(member) for member in get_args(annotation))
    return origin in (list, tuple)


def _list_value(key: str, value: str) -> list[object]:
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TargetError(f"--option {key}: {value!r} is not a JSON list: {exc}") from None
        if not isinstance(parsed, list):
            raise TargetError(f"--option {key}: {value!r} is not a JSON list")
        return parsed
    return [part.strip() for part in value.split(",") if part.strip()]


# --- finding the build -----------------------------------------------------------------------


def _resolve(target: Path) -> tuple[BuildArtifacts, BuildConfig | None]:
    if target.is_file() and target.suffix == ".zip":
        return BuildArtifacts(target.parent, target, _manifest_for(target.parent, target)), None
    if (target / paths.ZIP_FILE).is_file():
        zip_path = target / paths.ZIP_FILE
        return BuildArtifacts(target, zip_path, _manifest_for(target, zip_path)), None
    if (target / paths.CONFIG_FILE).is_file():
        config = load_config(target)
        folder = paths.dist_dir(target, config.name)
        zip_path = folder / paths.ZIP_FILE
        if not zip_path.is_file():
            raise TargetError(
                f"{target} has not been built yet ({zip_path} does not exist): "
                f"run `slimserve build {target}` first"
            )
        return BuildArtifacts(folder, zip_path, _manifest_for(folder, zip_path)), config
    raise TargetError(
        f"{target} is neither a build output folder (with {paths.ZIP_FILE} and {MANIFEST_FILE}) "
        f"nor a project folder (with {paths.CONFIG_FILE})"
    )


def _manifest_for(folder: Path, zip_path: Path) -> Manifest:
    beside = folder / MANIFEST_FILE
    try:
        if beside.is_file():
            return load_manifest(beside)
        with zipfile.ZipFile(zip_path) as archive, tempfile.TemporaryDirectory() as scratch:
            if _ZIP_MANIFEST not in archive.namelist():
                raise TargetError(
                    f"no {MANIFEST_FILE} beside {zip_path} and none at {_ZIP_MANIFEST} inside it"
                )
            extracted = Path(archive.extract(_ZIP_MANIFEST, scratch))
            return load_manifest(extracted)
    except ManifestError as exc:
        raise TargetError(str(exc)) from exc
    except zipfile.BadZipFile as exc:
        raise TargetError(f"{zip_path} is not a valid zip file: {exc}") from exc
