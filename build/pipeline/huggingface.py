"""``[source] huggingface``: a Hugging Face ``transformers`` or ``sentence-transformers`` model folder.

What is read from the folder (never from a hub: ``HF_HUB_OFFLINE=1`` and ``local_files_only``):

- ``config.json``: the architecture (``model_type``, ``architectures``), ``id2label`` for
  classifiers, ``max_position_embeddings``; an ``auto_map`` (code shipped with the model) is
  refused: slimserve runs only the architectures transformers itself ships;
- ``model.safetensors`` (or a sharded ``model.safetensors.index.json``): the weights; pickled
  ``pytorch_model.bin`` files are not loaded;
- ``tokenizer.json``: the fast tokenizer, shipped beside the model for the handler
  (``task_options.tokenizer_source``); ``tokenizer_config.json``'s ``model_max_length`` and
  sentence-transformers' ``max_seq_length`` give ``task_options.max_tokens``, its ``pad_token``
  ``task_options.pad_token``;
- ``modules.json`` (sentence-transformers): its Transformer, Pooling, Dense and Normalize modules
  are loaded by sentence-transformers itself and run inside the exported graph, so the graph maps
  token ids to the finished vector exactly as ``SentenceTransformer.encode`` does.

``task = "embedding"``: a sentence-transformers folder, or a plain encoder with
``task_options.pooling`` (mean, cls, max) and ``normalize``. ``task = "classification"``: a
``...ForSequenceClassification`` folder; the graph returns the logits, the handler tokenizes the
text input, applies softmax and names the classes with ``id2label``.

``derive_config`` fills in what the folder decides (task options, labels) from the JSON files
alone; ``huggingface_torch.load_model`` loads the PyTorch model once, for the export and as the
gate's original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.pipeline.source import resolve_folder
from slimserve.handler.tasks.embedding import DEFAULT_TOKENIZER_FILE

WHAT = "source.huggingface"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
ST_PACKAGE = "sentence_transformers."
# The modules of modules.json the exported graph reproduces (the first must be the Transformer).
ST_SUPPORTED = ("Transformer", "Pooling", "Dense", "Normalize")
# RoBERTa-style position ids start after the padding index: two positions are not usable.
_POSITION_OFFSET_TYPES = ("roberta", "xlm-roberta", "camembert")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{WHAT}: cannot read {path}: {exc}") from None
    if not isinstance(data, (dict, list)):
        raise ConfigError(f"{WHAT}: {path} is not a JSON object")
    return data


@dataclass(frozen=True)
class ModelFolder:
    """What the JSON files of a model folder say (nothing is loaded)."""

    path: Path
    reference: str  # as slimserve.toml names it
    config: dict[str, Any]
    modules: list[dict[str, Any]] | None  # modules.json (sentence-transformers), else None
    max_tokens: int | None

    @property
    def architecture(self) -> str:
        return next(iter(self.config.get("architectures") or []), "") or ""

    @property
    def labels(self) -> list[str] | None:
        id2label = self.config.get("id2label")
        if not isinstance(id2label, dict) or not id2label:
            return None
        return [str(id2label[key]) for key in sorted(id2label, key=lambda key: int(key))]

    @property
    def pad_token(self) -> str | None:
        """tokenizer_config.json's pad_token (a string, or an AddedToken's ``content``)."""
        path = self.path / "tokenizer_config.json"
        token = _read_json(path).get("pad_token") if path.is_file() else None
        if isinstance(token, dict):
            token = token.get("content")
        return token if isinstance(token, str) else None

    @property
    def tokenizer_source(self) -> str:
        return f"{self.reference.rstrip('/')}/{DEFAULT_TOKENIZER_FILE}"


def read_folder(config: BuildConfig) -> ModelFolder:
    """Check the folder for everything the build needs offline; each problem is one sentence."""
    reference = config.source.huggingface
    assert reference is not None
    folder = resolve_folder(config, reference, WHAT)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{WHAT}: {folder} has no config.json (not a Hugging Face model folder)")
    model_config = _read_json(folder / "config.json")
    if "auto_map" in model_config:
        raise ConfigError(
            f"{WHAT}: {folder} needs its own Python code (config.json has auto_map, trust_remote_code); slimserve "
            "runs only architectures that transformers ships"
        )
    _check_architecture(model_config, config.task, folder)
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ConfigError(
            f"{WHAT}: {folder} has no model.safetensors; slimserve never downloads weights (save the model there "
            "with save_pretrained; pickled pytorch_model.bin files are not loaded)"
        )
    if not (folder / DEFAULT_TOKENIZER_FILE).is_file():
        raise ConfigError(
            f"{WHAT}: {folder} has no tokenizer.json (the fast tokenizer the handler runs); save it there with "
            "AutoTokenizer.from_pretrained(...).save_pretrained(folder)"
        )
    modules = None
    if (folder / "modules.json").is_file():
        modules = _read_json(folder / "modules.json")
        if not isinstance(modules, list):
            raise ConfigError(f"{WHAT}: {folder / 'modules.json'} is not a list of modules")
        _check_modules(modules, folder)
    return ModelFolder(folder, reference, model_config, modules, _max_tokens(folder, model_config, modules))


def _check_architecture(model_config: dict[str, Any], task: str, folder: Path) -> None:
    from transformers import CONFIG_MAPPING

    model_type = model_config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ConfigError(
            f"{WHAT}: {folder}/config.json has model_type {model_type!r}, which transformers does not know"
        )
    if task == "classification":
        architecture = next(iter(model_config.get("architectures") or []), "")
        if not str(architecture).endswith("ForSequenceClassification"):
            raise ConfigError(
                f"{WHAT}: task = 'classification' needs a ...ForSequenceClassification folder; config.json's "
                f"architectures are {model_config.get('architectures')}"
            )


def _check_modules(modules: list[dict[str, Any]], folder: Path) -> None:
    kinds = [str(module.get("type", "")) for module in modules]
    names = [kind.rsplit(".", 1)[-1] for kind in kinds]
    unsupported = [kind for kind, name in zip(kinds, names) if not kind.startswith(ST_PACKAGE) or name not in ST_SUPPORTED]
    if unsupported:
        raise ConfigError(
            f"{WHAT}: {folder}/modules.json lists {unsupported[0]}; slimserve exports "
            f"{', '.join(ST_SUPPORTED)} modules only"
        )
    if not names or names[0] != "Transformer" or "Transformer" in names[1:]:
        raise ConfigError(f"{WHAT}: {folder}/modules.json must start with its one Transformer module; it lists {names}")
    settings = folder / modules[0].get("path", "") / "sentence_bert_config.json"
    if settings.is_file() and _read_json(settings).get("do_lower_case"):
        raise ConfigError(
            f"{WHAT}: {settings} sets do_lower_case, which tokenizer.json does not do; lowercase in the tokenizer "
            "(a Lowercase normalizer) instead"
        )


def _max_tokens(folder: Path, model_config: dict[str, Any], modules: list[dict[str, Any]] | None) -> int | None:
    """The model's sequence length: sentence-transformers' max_seq_length, else the tokenizer's
    model_max_length, capped by the position embeddings."""
    positions = model_config.get("max_position_embeddings")
    if isinstance(positions, int) and model_config.get("model_type") in _POSITION_OFFSET_TYPES:
        positions -= int(model_config.get("pad_token_id") or 1) + 1
    candidates = [positions] if isinstance(positions, int) else []
    settings = folder / (modules[0].get("path", "") if modules else "") / "sentence_bert_config.json"
    tokenizer_config = folder / "tokenizer_config.json"
    if modules and settings.is_file() and isinstance(_read_json(settings).get("max_seq_length"), int):
        candidates.append(_read_json(settings)["max_seq_length"])
    elif tokenizer_config.is_file() and isinstance(_read_json(tokenizer_config).get("model_max_length"), int):
        candidates.append(_read_json(tokenizer_config)["model_max_length"])
    usable = [value for value in candidates if value >= 2]
    return min(usable) if usable else None


def derive_config(config: BuildConfig) -> BuildConfig:
    """The build's config with what the folder decides filled in: the tokenizer to ship, the
    sequence length, and a classifier's labels. Keys the user set win."""
    if config.source.huggingface is None:
        return config
    folder = read_folder(config)
    options: dict[str, Any] = {"tokenizer": DEFAULT_TOKENIZER_FILE, "tokenizer_source": folder.tokenizer_source}
    if folder.max_tokens is not None:
        options["max_tokens"] = folder.max_tokens
    if folder.pad_token is not None:
        options["pad_token"] = folder.pad_token
    update: dict[str, Any] = {"task_options": {**options, **config.task_options}}
    if config.task == "embedding":
        pooling = config.task_options.get("pooling")
        if folder.modules is not None and ("pooling" in config.task_options or "normalize" in config.task_options):
            raise ConfigError(
                "task_options.pooling: a sentence-transformers folder pools as its modules.json says; remove "
                "task_options.pooling and task_options.normalize"
            )
        if folder.modules is None and pooling is None:
            raise ConfigError(
                f"task_options.pooling: {folder.path} is a plain encoder (no modules.json): choose how its token "
                "vectors become one vector per text: 'mean', 'cls' or 'max'"
            )
    else:
        labels = folder.labels
        if labels is None:
            raise ConfigError(f"{WHAT}: {folder.path}/config.json has no id2label (the class names)")
        update["labels"] = labels
    return config.model_copy(update=update)
