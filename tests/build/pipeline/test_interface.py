"""Each task's build-time interface, from the one table: the API tensors the manifest declares,
the files shipped beside the model, and the calibration arrays static int8 reads."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.build.pipeline import embedding
from slimserve.build.pipeline.huggingface import derive_config
from slimserve.build.pipeline.interface import TASKS, interface_for
from slimserve.build.pipeline.onnxfile import ModelInterface
from slimserve.handler.manifest import Task, TensorSpec
from slimserve.handler.tasks import TASKS as HANDLER_TASKS

from repo import EXAMPLES_DIR

LABEL_AND_SCORE = [
    TensorSpec(name="label", datatype="BYTES", shape=[-1, -1]),
    TensorSpec(name="score", datatype="FP32", shape=[-1, -1]),
]


def test_every_task_the_handler_serves_has_a_build_interface() -> None:
    assert set(TASKS) == set(HANDLER_TASKS) == set(get_args(Task))
    assert TASKS["embedding"].model_files is embedding.model_files


def _digits_model() -> ModelInterface:
    return ModelInterface(
        inputs=[TensorSpec(name="pixels", datatype="FP32", shape=[-1, 64])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, 10])],
        class_labels=None,
        probability_outputs=frozenset(),
    )


@pytest.mark.parametrize("task", ["raw", "classification"])
def test_tensor_tasks_expose_the_model_and_ship_no_files(task: str) -> None:
    config = load_config(EXAMPLES_DIR / "digits").model_copy(update={"task": task})
    interface = interface_for(config)
    model = _digits_model()
    served = interface.serve(config, model)
    assert served.inputs == model.inputs
    extras = LABEL_AND_SCORE if task == "classification" else []
    assert served.outputs == [*model.outputs, *extras]
    assert served.scored_output == "logits"
    assert interface.model_files(config) == {}
    assert interface.reserved == ({"label", "score"} if task == "classification" else set())


def test_tensor_calibration_is_the_dataset_and_is_required() -> None:
    config = load_config(EXAMPLES_DIR / "digits", {"validation.calibration": "data.py:calibration"})
    arrays = interface_for(config).calibration_inputs(config, ["pixels"])
    assert list(arrays) == ["pixels"] and arrays["pixels"].shape[1:] == (64,)
    without = load_config(EXAMPLES_DIR / "digits")
    with pytest.raises(ConfigError, match="validation.calibration is not set"):
        interface_for(without).calibration_inputs(without, ["pixels"])


def test_embedding_calibration_is_tokenized_texts() -> None:
    config = derive_config(load_config(EXAMPLES_DIR / "minilm"))
    names = ["input_ids", "attention_mask", "token_type_ids"]  # the BERT folder's inputs
    feeds = interface_for(config).calibration_inputs(config, names)
    assert list(feeds) == names
    texts = embedding.load_texts(config, config.validation.calibration, "validation.calibration")
    assert {array.shape[0] for array in feeds.values()} == {len(texts)}
    assert all(array.dtype == np.int64 for array in feeds.values())


def test_unknown_task_is_a_config_error() -> None:
    config = load_config(EXAMPLES_DIR / "digits").model_copy(update={"task": "translation"})
    with pytest.raises(ConfigError, match=r"task 'translation' has no build interface; choose one of \['classification', 'embedding', 'raw'\]"):
        interface_for(config)
