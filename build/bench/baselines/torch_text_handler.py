"""Baseline: a PyTorch sentence encoder served with FastAPI + Mangum, as a user would write it
without slimserve. Texts in (V2 JSON BYTES), one vector per text out."""

import importlib.util
import os

import torch
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel
from safetensors.torch import load_file
from tokenizers import Tokenizer

spec = importlib.util.spec_from_file_location("user_model", os.environ["BENCH_MODEL_PY"])
user_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(user_model)

model = getattr(user_model, os.environ.get("BENCH_FACTORY", "build_model"))()
model.load_state_dict(load_file(os.environ["BENCH_WEIGHTS"]))
model.eval()
tokenizer = Tokenizer.from_file(os.environ["BENCH_TOKENIZER"])
tokenizer.enable_truncation(max_length=256)
tokenizer.enable_padding()
MODEL_NAME = os.environ["BENCH_MODEL_NAME"]


class Texts(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[str]


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[Texts]


app = FastAPI()


@app.post("/v2/models/{model_name}/infer")
def infer(model_name: str, request: InferRequest) -> dict:
    encodings = tokenizer.encode_batch(request.inputs[0].data)
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    types = torch.tensor([e.type_ids for e in encodings])
    with torch.inference_mode():
        vectors = model(ids, mask, types)
    return {
        "model_name": MODEL_NAME,
        "id": request.id,
        "outputs": [{"name": "embedding", "datatype": "FP32", "shape": list(vectors.shape), "data": vectors.flatten().tolist()}],
    }


handler = Mangum(app, lifespan="off")
