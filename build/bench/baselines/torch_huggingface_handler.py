"""Baseline: a Hugging Face model folder (transformers / sentence-transformers) served with
FastAPI + Mangum, as a user would write it without slimserve. The model is the one the build
exported, loaded the same way (slimserve.build.pipeline.huggingface_torch.load_model: offline,
local_files_only, no remote code); the folder's tokenizer.json tokenizes. Texts in (V2 JSON
BYTES), the model's one output out (sentence vectors or classification logits)."""

import os
from pathlib import Path

import torch
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel
from tokenizers import Tokenizer

from slimserve.build.config import load_config
from slimserve.build.pipeline.huggingface_torch import SentenceEncoder, load_model

model = load_model(load_config(Path(os.environ["BENCH_EXAMPLE"])))
OUTPUT = "embedding" if isinstance(model, SentenceEncoder) else "logits"
tokenizer = Tokenizer.from_file(os.environ["BENCH_TOKENIZER"])
tokenizer.enable_truncation(max_length=int(os.environ["BENCH_MAX_TOKENS"]))
pad_token = os.environ["BENCH_PAD_TOKEN"]
tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad_token) or 0, pad_token=pad_token)
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
    columns = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    with torch.inference_mode():
        y = model(*(torch.tensor(columns[name]) for name in model.input_names))
    return {
        "model_name": MODEL_NAME,
        "id": request.id,
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": list(y.shape), "data": y.flatten().tolist()}],
    }


handler = Mangum(app, lifespan="off")
