"""Load the user's model: a Python module that builds the nn.Module plus a weights file.

Weights are read as safetensors, or as a state dict with ``torch.load(weights_only=True)``:
never as an arbitrary pickle, which would run code from the file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from build.config import BuildConfig, ConfigError


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
    finally:
        if added:
            sys.path.remove(folder)
    return module


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
    model = factory(**source.factory_kwargs)
    state = load_state_dict(config.path(source.weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"weights {source.weights} do not fit the model from {source.module}: {exc}") from None
    model.eval()
    return model
