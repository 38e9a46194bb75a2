"""The classification task at build time: which output holds the class scores, whether they are
logits or probabilities, the labels, and how held-out labels compare with served ones.

The handler (``slimserve.handler.tasks.classification``) serves every output of the model plus
``label`` and ``score``; the build decides, once, what it needs to know and writes it into the
manifest (``task_options.output``, ``task_options.scores``, ``labels``):

- the scores output: ``task_options.output``, else the model's only float [batch, classes] output
  (scikit-learn converters add an integer or string ``label`` output beside it);
- logits or probabilities: ``task_options.scores``, else detected from the graph (a final Softmax,
  a scikit-learn converter's classifier), else logits. Probabilities are checked on the held-out
  data (``check_probabilities``): rows in [0, 1] that sum to 1;
- labels: ``labels``, else the classes the converter stored in the graph (``classlabels_*``), else
  the class indices; their count must be the number of classes;
- the top-1 label: a converter's own predicted-label output when there is one
  (``task_options.label_output``), else the most probable class.
"""

from __future__ import annotations

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError, ModelError
from slimserve.build.pipeline.onnxfile import ModelInterface, ServedInterface
from slimserve.handler.datatypes import FLOAT_DATATYPES
from slimserve.handler.manifest import TensorSpec
from slimserve.handler.tasks.classification import LABEL_OUTPUT, SCORE_OUTPUT

ADDED_OUTPUTS = (LABEL_OUTPUT, SCORE_OUTPUT)
TEXT_INPUT = "text"
PROBABILITY_SUM_TOLERANCE = 1e-3


def takes_text(config: BuildConfig) -> bool:
    """A text classifier: the build ships a tokenizer (``task_options.tokenizer``, set from a
    ``source.huggingface`` folder) and the API takes texts."""
    return "tokenizer" in config.task_options


def _describe(specs: list[TensorSpec]) -> str:
    return ", ".join(f"{spec.name} {spec.datatype} {spec.shape}" for spec in specs)


def scores_output(config: BuildConfig, model: ModelInterface) -> TensorSpec:
    candidates = [spec for spec in model.outputs if spec.datatype in FLOAT_DATATYPES and len(spec.shape) == 2]
    named = config.task_options.get("output")
    if named is not None:
        if named not in model.output_names:
            raise ModelError(f"task_options.output: {named!r} is not an output of the model; its outputs are {_describe(model.outputs)}")
        spec = model.output(named)
        if spec not in candidates:
            raise ModelError(
                f"task_options.output: {named!r} is {spec.datatype} {spec.shape}; class scores are a float "
                "[batch, classes] tensor"
            )
        return spec
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(
            "task = 'classification' needs an output of class scores (float, [batch, classes]); the model's "
            f"outputs are {_describe(model.outputs)}"
        )
    raise ModelError(
        f"task = 'classification': the model has {len(candidates)} float [batch, classes] outputs "
        f"({', '.join(spec.name for spec in candidates)}): set task_options.output to the one holding the class scores"
    )


def serve(config: BuildConfig, model: ModelInterface) -> ServedInterface:
    spec = scores_output(config, model)
    declared = config.task_options.get("scores")
    detected = "probabilities" if spec.name in model.probability_outputs else "logits"
    kind = declared or detected
    classes = spec.shape[-1]
    notes = [
        f"class scores: output {spec.name!r}, {kind}"
        + (" (task_options.scores)" if declared else f" (detected: {'from the graph' if kind == 'probabilities' else 'no Softmax or classifier output in the graph'})")
        + ("; score = softmax of them" if kind == "logits" else "; score = the model's probability as is")
    ]
    if config.labels is not None:
        labels = list(config.labels)
    elif model.class_labels is not None:
        labels = list(model.class_labels)
        notes.append(f"labels: the model's own classes {labels[:10]}{' ...' if len(labels) > 10 else ''}")
    elif classes != -1:
        labels = [str(index) for index in range(classes)]
    else:
        raise ModelError(f"labels: the number of classes of output {spec.name!r} is not fixed in the graph; list them in labels")
    if classes != -1 and len(labels) != classes:
        source = "labels lists" if config.labels is not None else "the model stores"
        raise ModelError(f"labels: {source} {len(labels)} classes, the model's output {spec.name!r} has {classes}")
    if config.labels is not None and model.class_labels is not None and len(model.class_labels) != len(labels):
        raise ModelError(f"labels: {len(labels)} given, the model stores {len(model.class_labels)} classes {model.class_labels}")
    options = {**config.task_options, "output": spec.name, "scores": kind}
    own = [
        other for other in model.outputs
        if other.datatype in ("INT64", "INT32", "BYTES") and other.shape[1:] in ([], [1])
    ]
    if len(own) == 1 and model.class_labels is not None and len(model.class_labels) == len(labels):
        # A converter's classifier also returns its own prediction, which is not always the most
        # probable class (an SVC votes): serve it as the top-1 label, as scikit-learn's predict does.
        options.update(label_output=own[0].name, label_values=list(model.class_labels))
        notes.append(f"top-1 label: the model's own prediction (output {own[0].name!r}), as its library's predict")
    return ServedInterface(
        model=model,
        # A text classifier (source.huggingface): texts in, the handler tokenizes them.
        inputs=[TensorSpec(name=TEXT_INPUT, datatype="BYTES", shape=[-1])] if takes_text(config) else list(model.inputs),
        outputs=[
            *model.outputs,
            TensorSpec(name=LABEL_OUTPUT, datatype="BYTES", shape=[-1, -1]),
            TensorSpec(name=SCORE_OUTPUT, datatype="FP32", shape=[-1, -1]),
        ],
        scored_output=spec.name,
        labels=labels,
        task_options=options,
        notes=notes,
    )


def check_probabilities(scores: np.ndarray, name: str, declared: bool) -> None:
    """Probabilities are served as they are: make sure they are probabilities."""
    values = np.asarray(scores, dtype=np.float64)
    sums = values.sum(axis=-1)
    bad = np.flatnonzero((np.abs(sums - 1.0) > PROBABILITY_SUM_TOLERANCE) | (values.min(axis=-1) < -1e-6) | (values.max(axis=-1) > 1 + 1e-6))
    if bad.size:
        row = int(bad[0])
        how = "task_options.scores = 'probabilities'" if declared else "the graph says so"
        raise ModelError(
            f"output {name!r} is served as probabilities ({how}), but on held-out row {row} its values sum to "
            f"{sums[row]:.4g} (range {values[row].min():.4g}..{values[row].max():.4g}): set task_options.scores = 'logits'"
        )


def expected_labels(values: np.ndarray, labels: list[str], what: str) -> np.ndarray:
    """Held-out labels as the served label strings. They may be the class labels themselves (what
    scikit-learn's ``predict`` returns, e.g. 'setosa' or 3) or class indices 0..C-1."""
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind == "f" and array.size and np.all(np.mod(array, 1) == 0):
        array = array.astype(np.int64)  # 2.0 from a float column is class 2
    text = np.array([value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in array.tolist()], dtype=object)
    known = set(labels)
    if all(value in known for value in text):
        return text
    if array.dtype.kind in "iu" and array.size and array.min() >= 0 and array.max() < len(labels):
        return np.array(labels, dtype=object)[array]
    unknown = next(value for value in text if value not in known)
    raise ConfigError(
        f"{what}: label {unknown!r} is neither one of the model's classes {labels[:10]}{' ...' if len(labels) > 10 else ''} "
        f"nor a class index 0..{len(labels) - 1}"
    )
