"""Task adapters: what the API does on top of the raw ONNX session.

One Protocol and one explicit table keyed by the manifest's ``task``. An adapter says which
tensors the API takes and returns (the manifest's ``inputs``/``outputs``), checks at load time
that the model fits, and turns decoded request tensors into response tensors. Adapters are
imported only when a model of their task loads, so ``tokenizers`` stays out of the cold start of
models that do not need it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from slimserve.handler.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np

    from slimserve.handler.model import LoadedModel


class TaskAdapter(Protocol):
    task: ClassVar[str]

    def __init__(self, model: LoadedModel) -> None: ...

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        """Return every output the task can produce, keyed by name."""
        ...


# task -> (module, class). The one place a task is registered.
TASKS: dict[str, tuple[str, str]] = {
    "raw": ("slimserve.handler.tasks.raw", "RawTask"),
    "classification": ("slimserve.handler.tasks.classification", "ClassificationTask"),
    "embedding": ("slimserve.handler.tasks.embedding", "EmbeddingTask"),
}


def adapter_class(task: str) -> type[TaskAdapter]:
    try:
        module, name = TASKS[task]
    except KeyError:
        raise ModelLoadError(f"manifest task {task!r} is not supported; choose one of {sorted(TASKS)}") from None
    return getattr(import_module(module), name)


def adapter_for(model: LoadedModel) -> TaskAdapter:
    return adapter_class(model.manifest.task)(model)
