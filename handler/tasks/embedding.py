"""Text embeddings: a batch of UTF-8 strings in, one unit-length vector per string out.

The API takes one BYTES tensor (``text``, shape ``[-1]``) and returns the model's single output
(``embedding``, FP32 ``[batch, dim]``). In between, a Hugging Face ``tokenizers`` tokenizer
(``tokenizer.json`` beside the model; ``task_options.tokenizer`` names the file) turns the
texts into ``input_ids`` / ``attention_mask`` / ``token_type_ids``, truncated at
``max_tokens`` and padded to the longest text of the batch. Pooling and L2 normalisation are
inside the ONNX graph, so the handler only tokenizes.

Only numpy, tokenizers and the standard library: importing this module must stay cheap (it is
imported at cold start, only when the manifest's task is ``embedding`` or a classifier takes
text). The build's gate uses the same ``load_tokenizer`` / ``TokenFeeds`` so it measures exactly
what is served; ``TextInput`` is the request side both text tasks share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from tokenizers import Tokenizer

from slimserve.handler.errors import BadRequest, ModelLoadError
from slimserve.handler.model import LoadedModel

if TYPE_CHECKING:
    from slimserve.handler.manifest import Limits

# What a tokenizer can feed a model; an embedding model takes a subset (input_ids required).
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_TOKENIZER_FILE = "tokenizer.json"
_ORT_INTEGER_TYPES = {"tensor(int64)": np.dtype(np.int64), "tensor(int32)": np.dtype(np.int32)}


def max_tokens_for(task_options: Mapping[str, Any], limits: Limits) -> int:
    """Tokens per text after truncation: the model's own sequence length
    (``task_options.max_tokens``, e.g. 256 for all-MiniLM-L6-v2) capped by the operator's
    ``runtime.limits.max_tokens``."""
    raw = task_options.get("max_tokens", limits.max_tokens)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 2:
        raise ModelLoadError(f"task_options.max_tokens must be an integer >= 2, got {raw!r}")
    return min(raw, limits.max_tokens)


def load_tokenizer(path: Path, max_tokens: int, pad_token: str | None = None) -> Tokenizer:
    """Read ``tokenizer.json``; truncate every text at ``max_tokens`` (special tokens included)
    and pad each batch to its longest text, whatever the file itself says (the MiniLM file
    pads and truncates at a fixed 128). ``pad_token`` (``task_options.pad_token``, from a
    Hugging Face folder's tokenizer_config.json) pads when the file sets no padding: RoBERTa's
    is ``<pad>`` = 1, not id 0."""
    if not path.is_file():
        raise ModelLoadError(f"tokenizer file not found: {path}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses from Rust
        raise ModelLoadError(f"cannot load tokenizer {path}: {exc}") from None
    padding = tokenizer.padding or {}
    if not padding and pad_token is not None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ModelLoadError(f"task_options.pad_token {pad_token!r} is not in the tokenizer's vocabulary")
        padding = {"pad_id": pad_id, "pad_token": pad_token}
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(
        direction=padding.get("direction", "right"),
        pad_id=padding.get("pad_id", 0),
        pad_type_id=padding.get("pad_type_id", 0),
        pad_token=padding.get("pad_token", "[PAD]"),
    )  # no length: pad to the longest text in the batch
    return tokenizer


class TokenFeeds:
    """Texts -> the model's integer input tensors (only the inputs the model takes)."""

    def __init__(self, tokenizer: Tokenizer, inputs: Mapping[str, np.dtype]) -> None:
        unknown = sorted(set(inputs) - set(TOKEN_INPUTS))
        if unknown or "input_ids" not in inputs:
            raise ModelLoadError(
                f"an embedding model takes input_ids and optionally attention_mask / token_type_ids; "
                f"this one takes {sorted(inputs)}"
            )
        self.tokenizer = tokenizer
        self.inputs = dict(inputs)

    @classmethod
    def for_session(cls, tokenizer: Tokenizer, session: Any) -> TokenFeeds:
        """From an onnxruntime session's inputs (int64 or int32)."""
        inputs = {}
        for node in session.get_inputs():
            dtype = _ORT_INTEGER_TYPES.get(node.type)
            if dtype is None and node.name in TOKEN_INPUTS:
                raise ModelLoadError(f"model input {node.name} is {node.type}; expected tensor(int64) or tensor(int32)")
            inputs[node.name] = dtype
        return cls(tokenizer, inputs)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        # One text (the common request) skips encode_batch: its thread pool costs more to wake
        # than one text takes to encode (~40 us of a ~0.1 ms request overhead). Padding to the
        # longest text of a batch of one pads nothing, so the ids are the same.
        if len(texts) == 1:
            encodings = [self.tokenizer.encode(texts[0])]
        else:
            encodings = self.tokenizer.encode_batch(list(texts))
        columns = {
            "input_ids": lambda e: e.ids,
            "attention_mask": lambda e: e.attention_mask,
            "token_type_ids": lambda e: e.type_ids,
        }
        return {
            name: np.array([columns[name](encoding) for encoding in encodings], dtype=dtype)
            for name, dtype in self.inputs.items()
        }


def _model_dir_candidates(model: LoadedModel) -> list[Path]:
    """Where the tokenizer may be: it ships in the model folder (model/ in lambda.zip). The .onnx
    file is usually there too, but with package = "s3" it was fetched to /tmp; then the folder
    is the one the settings name (SLIMSERVE_MODEL_DIR, else <task root>/model)."""
    from slimserve.handler.settings import Settings

    candidates = [model.model_dir, model.model_path.parent, Settings.from_env().model_dir]
    return list(dict.fromkeys(Path(path) for path in candidates if path is not None))


class TextInput:
    """The API's one BYTES vector of texts -> the model's token inputs: the tokenizer beside the
    model (``task_options.tokenizer``), cut at ``max_tokens``; shared by the embedding task and
    text classification (a ``source.huggingface`` classifier), so both tokenize identically.

    Request limits: ``limits.max_batch`` texts, ``limits.max_text_chars`` characters each (413);
    longer token sequences are truncated, an empty string is a valid text."""

    def __init__(self, model: LoadedModel, input_name: str) -> None:
        options = model.manifest.task_options
        self.input_name = input_name
        self.limits = model.manifest.runtime.limits
        self.max_tokens = max_tokens_for(options, self.limits)
        file_name = options.get("tokenizer", DEFAULT_TOKENIZER_FILE)
        if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name:
            raise ModelLoadError(f"task_options.tokenizer must be a file name in the model folder, got {file_name!r}")
        folders = _model_dir_candidates(model)
        path = next((folder / file_name for folder in folders if (folder / file_name).is_file()), folders[0] / file_name)
        pad_token = options.get("pad_token")
        if pad_token is not None and not isinstance(pad_token, str):
            raise ModelLoadError(f"task_options.pad_token must be a token, got {pad_token!r}")
        self.tokenizer = load_tokenizer(path, self.max_tokens, pad_token)
        self.feeds = TokenFeeds.for_session(self.tokenizer, model.session)

    def texts(self, array: np.ndarray) -> list[str]:
        """The request tensor as checked texts (vector shape, batch and length limits, UTF-8)."""
        if array.ndim != 1:
            raise BadRequest(f"input '{self.input_name}' must be a vector of texts (shape [batch]), got shape {list(array.shape)}")
        if len(array) > self.limits.max_batch:
            raise BadRequest(
                f"input '{self.input_name}' batch size {len(array)} exceeds the limit of {self.limits.max_batch}"
            )
        texts = []
        for element in array.tolist():
            if isinstance(element, bytes):
                try:
                    element = element.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest(f"input '{self.input_name}' has BYTES elements that are not valid UTF-8") from None
            if not isinstance(element, str):
                raise BadRequest(f"input '{self.input_name}' is BYTES: every element must be a string")
            if len(element) > self.limits.max_text_chars:
                raise BadRequest(
                    f"input '{self.input_name}' has a text of {len(element)} characters, more than the limit of "
                    f"{self.limits.max_text_chars}"
                )
            texts.append(element)
        return texts


class EmbeddingTask:
    """``text`` (BYTES ``[batch]``) -> ``embedding`` (FP32 ``[batch, dim]``, unit length).

    Load-time checks (ModelLoadError): the manifest takes one BYTES vector and returns one FP32
    matrix the model produces; the model's inputs are a subset of input_ids / attention_mask /
    token_type_ids; the tokenizer loads; a warm-up batch (an empty text and one of
    ``max_tokens`` tokens) runs and gives ``dim`` floats per text. Request limits: ``TextInput``.
    """

    task: ClassVar[str] = "embedding"

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        manifest = model.manifest
        if len(manifest.inputs) != 1 or manifest.inputs[0].datatype != "BYTES" or len(manifest.inputs[0].shape) != 1:
            raise ModelLoadError(
                f"an embedding model's API takes one BYTES vector of texts; the manifest declares "
                f"{[(spec.name, spec.datatype, spec.shape) for spec in manifest.inputs]}"
            )
        self.input_name = manifest.inputs[0].name
        if len(manifest.outputs) != 1 or manifest.outputs[0].datatype != "FP32" or len(manifest.outputs[0].shape) != 2:
            raise ModelLoadError(
                f"an embedding model's API returns one FP32 [batch, dim] tensor; the manifest declares "
                f"{[(spec.name, spec.datatype, spec.shape) for spec in manifest.outputs]}"
            )
        self.output_name = manifest.outputs[0].name
        if self.output_name not in model.output_names:
            raise ModelLoadError(
                f"manifest output {self.output_name!r} is not produced by the model (it has {list(model.output_names)})"
            )
        self.text = TextInput(model, self.input_name)
        self.max_tokens, self.tokenizer, self.feeds = self.text.max_tokens, self.text.tokenizer, self.text.feeds
        self.dim = self._warm_up(manifest.outputs[0].shape[1])
        # That warm-up was the session's first run: the service need not prime it again.
        self.primed = True

    def _warm_up(self, declared_dim: int) -> int:
        """Run once at load: proves the model answers (an empty text included) and learns the
        vector size. Kept short on purpose: a full 256-token batch here cost ~150 ms of cold
        start; the build's gate already ran this model on texts longer than max_tokens."""
        texts = ["", "warm up"]
        try:
            vectors = self.model.run(self.feeds(texts), [self.output_name])[self.output_name]
        except Exception as exc:
            cause = exc.__cause__ or exc  # LoadedModel.run hides onnxruntime's message from clients
            raise ModelLoadError(
                f"the embedding model fails on a warm-up batch: {cause}"
            ) from None
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ModelLoadError(f"the model returned shape {list(vectors.shape)} for 2 texts; expected [2, dim]")
        if declared_dim != -1 and vectors.shape[1] != declared_dim:
            raise ModelLoadError(f"the model returns {vectors.shape[1]} floats per text, the manifest declares {declared_dim}")
        return int(vectors.shape[1])

    def texts(self, array: np.ndarray) -> list[str]:
        """The request tensor as checked texts (``TextInput.texts``)."""
        return self.text.texts(array)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.run(self.feeds(texts), [self.output_name])[self.output_name]
        return vectors.astype(np.float32, copy=False)

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        return {self.output_name: self.embed(self.texts(tensors[self.input_name]))}
