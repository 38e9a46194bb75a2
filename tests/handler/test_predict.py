"""POST /predict: the plain route maps onto the same checks and model as V2 infer."""

from __future__ import annotations

import pytest


def test_predict_returns_labels(client, heldout) -> None:
    pixels, labels = heldout
    response = client.post("/predict", json={"instances": pixels[:4].tolist(), "parameters": {"top_k": 2}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "digits"
    assert [p["label"] for p in body["predictions"]] == [str(v) for v in labels[:4]]
    first = body["predictions"][0]
    assert len(first["labels"]) == 2 and first["labels"][0] == first["label"]
    assert first["score"] == first["scores"][0] and 0.5 < first["score"] <= 1.0
    assert "values" not in first
    # every output of the model comes back too: here its logits, whose arg-max is the label
    logits = first["outputs"]["logits"]
    assert len(logits) == 10 and str(max(range(10), key=logits.__getitem__)) == first["label"]


@pytest.mark.parametrize(
    "body,status,message",
    [
        ({"instances": []}, 422, "invalid predict request at 'instances': List should have at least 1 item"),
        ({"instances": [[1, 2]]}, 400, "input 'pixels' has shape [1, 2] but the model expects [-1, 64]"),
        ({"instances": ["a"]}, 400, "input 'pixels' has shape [1] but the model expects rank 2"),
        ({"instances": [[0.0] * 64], "parameters": {"top_k": 0}}, 400, "parameters.top_k must be an integer from 1 to 10"),
        ({"rows": [[0.0] * 64]}, 422, "invalid predict request at 'instances': Field required"),
        ({"instances": [[[[[[0]]]]]] * 1}, 400, "has shape [1, 1, 1, 1, 1, 1] but the model expects rank 2"),
    ],
)
def test_predict_bad_input(client, body: dict, status: int, message: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
