"""A Hugging Face model folder as one PyTorch module the exporter traces and the gate compares
against: token-id tensors in, one output (``embedding`` vectors or classification ``logits``).

Loading never reaches a hub (``HF_HUB_OFFLINE=1``, ``local_files_only=True``) and never runs
code from the folder (``trust_remote_code=False``); what the folder holds was checked first
(``huggingface.read_folder``).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from slimserve.build.config import BuildConfig, ExportConfig
from slimserve.build.errors import ConfigError, ModelError
from slimserve.build.pipeline.export import export_onnx
from slimserve.build.pipeline.huggingface import WHAT, read_folder
from slimserve.handler.manifest import TensorSpec
from slimserve.handler.tasks.embedding import TOKEN_INPUTS

EMBEDDING_OUTPUT = "embedding"
LOGITS_OUTPUT = "logits"
Loaded = TypeVar("Loaded")


class SentenceEncoder(nn.Module):
    """Token ids -> the encoder's token vectors -> sentence-transformers' own Pooling, Dense and
    Normalize modules, run as ``SentenceTransformer.encode`` runs them."""

    def __init__(self, encoder: nn.Module, input_names: list[str], stages: list[nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_names = input_names
        self.stages = nn.ModuleList(stages)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        feeds = dict(zip(self.input_names, inputs))
        tokens = self.encoder(**feeds, return_dict=True).last_hidden_state
        features: dict[str, Any] = {"token_embeddings": tokens, "attention_mask": feeds["attention_mask"]}
        for stage in self.stages:
            features = stage(features)
        return features["sentence_embedding"]


class SequenceClassifier(nn.Module):
    """Token ids -> the classifier's logits (softmax is the handler's: task_options.scores)."""

    def __init__(self, model: nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs)), return_dict=True).logits


def _offline() -> None:
    """Set before transformers / huggingface_hub read their settings (and passed as
    local_files_only anyway)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _quiet() -> None:
    """The build's step list is the progress: transformers' own bars ("Loading weights") and
    warnings would break into it."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def _token_inputs(model: nn.Module) -> list[str]:
    """The tokenizer outputs the encoder takes (DistilBERT has no token_type_ids)."""
    parameters = inspect.signature(model.forward).parameters
    return [name for name in TOKEN_INPUTS if name in parameters]


def _loading(what: str, load: Callable[[], Loaded]) -> Loaded:
    try:
        return load()
    except (ConfigError, ModelError):
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, ...: one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{WHAT}: loading {what} failed: {type(exc).__name__}: {first}") from None


def load_model(config: BuildConfig) -> SentenceEncoder | SequenceClassifier:
    """The folder as one module in eval mode (``input_names``: the token inputs it takes)."""
    _offline()
    _quiet()
    folder = read_folder(config)
    path = str(folder.path)
    offline = {"local_files_only": True, "trust_remote_code": False}
    wrapped: SentenceEncoder | SequenceClassifier
    if config.task == "classification":
        from transformers import AutoModelForSequenceClassification

        model = _loading(path, lambda: AutoModelForSequenceClassification.from_pretrained(path, **offline))
        wrapped = SequenceClassifier(model, _token_inputs(model))
    elif folder.modules is not None:
        from sentence_transformers import SentenceTransformer

        st = _loading(path, lambda: SentenceTransformer(path, device="cpu", **offline))
        stages = list(st)
        encoder = stages[0].auto_model
        wrapped = SentenceEncoder(encoder, _token_inputs(encoder), stages[1:])
    else:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
        from transformers import AutoModel

        encoder = _loading(path, lambda: AutoModel.from_pretrained(path, **offline))
        pooled: list[nn.Module] = [Pooling(encoder.config.hidden_size, pooling_mode=config.task_options["pooling"])]
        if config.task_options.get("normalize", True):
            pooled.append(Normalize())
        wrapped = SentenceEncoder(encoder, _token_inputs(encoder), pooled)
    wrapped.eval()
    return wrapped


def export_config(config: BuildConfig, model: SentenceEncoder | SequenceClassifier) -> ExportConfig:
    """The module's interface as [export] would declare it (the exporter traces with it); the
    output's width (vector size or classes) is fixed, measured on one short text."""
    inputs = [TensorSpec(name=name, datatype="INT64", shape=[-1, -1]) for name in model.input_names]
    with torch.no_grad():
        probe = model(*(torch.full((1, 2), int(spec.name != "token_type_ids"), dtype=torch.int64) for spec in inputs))
    name = EMBEDDING_OUTPUT if config.task == "embedding" else LOGITS_OUTPUT
    output = TensorSpec(name=name, datatype="FP32", shape=[-1, int(probe.shape[-1])])
    return config.export.model_copy(update={"inputs": inputs, "outputs": [output]})


def export(model: SentenceEncoder | SequenceClassifier, declared: ExportConfig, destination: Path) -> Path:
    """``export.export_onnx`` without the tracer's notes on transformers' Python-side shape checks
    (the gate compares the export with this very module on the held-out texts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        return export_onnx(model, declared, destination)
