"""Baseline: the shipped ONNX model served with a minimal hand-written FastAPI + Mangum +
onnxruntime handler (onnxruntime's default session options). Tensors or texts in (V2 JSON),
the model's first output out."""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel

session = ort.InferenceSession(os.environ["BENCH_ONNX"], providers=["CPUExecutionProvider"])
MODEL_NAME = os.environ["BENCH_MODEL_NAME"]
tokenizer = None
if os.environ.get("BENCH_TOKENIZER"):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.environ["BENCH_TOKENIZER"])
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding()


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[Tensor]


app = FastAPI()


@app.post("/v2/models/{model_name}/infer")
def infer(model_name: str, request: InferRequest) -> dict:
    tensor = request.inputs[0]
    if tokenizer is not None:
        encodings = tokenizer.encode_batch(tensor.data)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {node.name: np.array(columns[node.name], dtype=np.int64) for node in session.get_inputs()}
    else:
        feeds = {tensor.name: np.array(tensor.data, dtype=np.float32).reshape(tensor.shape)}
    y = session.run(None, feeds)[0]
    return {
        "model_name": MODEL_NAME,
        "id": request.id,
        "outputs": [{"name": "output", "datatype": "FP32", "shape": list(y.shape), "data": y.ravel().tolist()}],
    }


handler = Mangum(app, lifespan="off")
