"""Baseline: the PyTorch model served with FastAPI + Mangum, as a user would write it without
slimserve. Tensor in (V2 JSON), the model's output out."""

import importlib.util
import os

import torch
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel
from safetensors.torch import load_file

spec = importlib.util.spec_from_file_location("user_model", os.environ["BENCH_MODEL_PY"])
user_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(user_model)

model = getattr(user_model, os.environ.get("BENCH_FACTORY", "build_model"))()
model.load_state_dict(load_file(os.environ["BENCH_WEIGHTS"]))
model.eval()
MODEL_NAME = os.environ["BENCH_MODEL_NAME"]


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[Tensor]


app = FastAPI()


@app.post("/v2/models/{model_name}/infer")
def infer(model_name: str, request: InferRequest) -> dict:
    tensor = request.inputs[0]
    x = torch.tensor(tensor.data, dtype=torch.float32).reshape(tensor.shape)
    with torch.inference_mode():
        y = model(x)
    return {
        "model_name": MODEL_NAME,
        "id": request.id,
        "outputs": [{"name": "output", "datatype": "FP32", "shape": list(y.shape), "data": y.flatten().tolist()}],
    }


handler = Mangum(app, lifespan="off")
