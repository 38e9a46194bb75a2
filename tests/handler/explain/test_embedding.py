"""Token attributions for MiniLM: which tokens make two sentences similar (the shipped int8
model through the app), and the estimators against shap on the fp32 export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shap
from scipy.stats import spearmanr

from slimserve.handler.explain.games import cosine, token_game
from slimserve.handler.explain.shapley import kernel_shap, shapley_sampling

MODEL = "/v2/models/minilm"

# (sentence, target, the words they share that must rank first). Hand-picked: function words
# they also share ("the", "my") carry little meaning and rank lower.
PAIRS = [
    ("The cat sleeps on the warm sofa.", "A cat is sleeping.", {"cat"}),
    ("A man is playing a guitar on stage.", "Someone plays the guitar.", {"guitar"}),
    ("How do I reset my password?", "I forgot my password and need to reset it.", {"password", "reset"}),
    ("She bought fresh bread at the bakery.", "The bakery sells bread.", {"bakery", "bread"}),
    ("The weather in Paris is sunny today.", "Paris has sunny weather.", {"paris", "sunny", "weather"}),
]


def minilm(test):
    """Slow, and kept on one xdist worker (--dist loadgroup): the build is made once per session."""
    return pytest.mark.slow(pytest.mark.xdist_group("minilm")(test))


@pytest.fixture(scope="module")
def minilm_client(minilm_build: Path):
    from fastapi.testclient import TestClient

    from slimserve.handler.app import create_app
    from slimserve.handler.model import load_model

    with TestClient(create_app(load_model(minilm_build, intra_op_threads=1))) as client:
        yield client


def explain(client, text: str, **parameters) -> tuple[int, dict]:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}], "parameters": parameters}
    response = client.post(f"{MODEL}/explain", json=body)
    return response.status_code, response.json()


def by_name(document: dict) -> dict[str, dict]:
    return {output["name"]: output for output in document["outputs"]}


@minilm
@pytest.mark.parametrize("sentence,target,shared", PAIRS, ids=[pair[0] for pair in PAIRS])
def test_top_tokens_are_the_words_both_sentences_share(minilm_client, sentence: str, target: str, shared: set[str]) -> None:
    status, document = explain(minilm_client, sentence, target=target)
    assert status == 200, document
    outputs = by_name(document)
    tokens, attributions = outputs["tokens"]["data"], outputs["attributions"]["data"]
    top = {tokens[index] for index in np.argsort(attributions)[::-1][: len(shared)]}
    assert top == shared, list(zip(tokens, np.round(attributions, 3)))


@minilm
@pytest.mark.parametrize("method", ["shapley-sampling", "kernel-shap"])
def test_attributions_add_up_to_the_served_cosine(minilm_client, method: str) -> None:
    sentence, target, _ = PAIRS[2]
    status, document = explain(minilm_client, sentence, target=target, method=method)
    assert status == 200, document
    outputs = by_name(document)
    assert outputs["tokens"]["datatype"] == "BYTES" and outputs["tokens"]["shape"] == outputs["attributions"]["shape"]
    assert outputs["tokens"]["data"] == ["how", "do", "i", "reset", "my", "password", "?"]
    # The explained output: cosine of the two texts' served vectors, each embedded alone (int8
    # activations are quantized per batch: a padded batch of both would give other vectors).
    served = []
    for text in (sentence, target):
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
        served.append(by_name(minilm_client.post(f"{MODEL}/infer", json=body).json())["embedding"]["data"])
    expected = float(cosine(np.array(served[:1]), np.array(served[1]))[0])
    total = outputs["base_value"]["data"][0] + float(np.sum(outputs["attributions"]["data"]))
    assert abs(total - expected) < 1e-3
    assert document["parameters"]["residual"] < 1e-3
    assert document["parameters"]["exact"] is (method == "kernel-shap")
    assert by_name(document)["embedding"]["shape"] == [1, 384]


@minilm
@pytest.mark.parametrize(
    "parameters,message",
    [
        ({}, "parameters.target must be the text to compare with (a string): an embedding's explanation attributes the "
             "cosine similarity between the input text and parameters.target, got None"),
        ({"target": 3}, "parameters.target must be the text to compare with (a string): an embedding's explanation "
                        "attributes the cosine similarity between the input text and parameters.target, got 3"),
        ({"target": "x" * 10_001}, "parameters.target has 10001 characters, more than the limit of 10000"),
        ({"target": "a", "method": "lime"},
         "parameters.method must be one of ['shapley-sampling', 'kernel-shap', 'leave-one-out'], got 'lime'"),
    ],
)
def test_bad_targets_are_400s(minilm_client, parameters: dict, message: str) -> None:
    assert explain(minilm_client, "A short text.", **parameters) == (400, {"error": message})


@pytest.fixture(scope="module")
def fp32_game(minilm_build: Path):
    """The token game of one sentence pair on the fp32 export (no quantization noise)."""
    from slimserve.build.gate.validate import onnx_session
    from slimserve.handler.tasks.embedding import TokenFeeds, load_tokenizer

    session = onnx_session(minilm_build / "work" / "fp32.onnx")
    tokenizer = load_tokenizer(minilm_build / "tokenizer.json", 256)
    feeds_for = TokenFeeds.for_session(tokenizer, session)
    sentence, target, _ = PAIRS[4]
    embed = lambda batch: session.run(None, batch)[0]  # noqa: E731
    target_vector = embed(feeds_for([target]))[0]
    feeds = feeds_for([sentence])
    special = np.array(tokenizer.encode(sentence).special_tokens_mask, dtype=bool)
    full = float(cosine(embed(feeds), target_vector)[0])
    return token_game(feeds, special, embed, target_vector, full).game


@minilm
def test_token_estimators_match_shap_on_the_fp32_model(fp32_game) -> None:
    """shap's KernelExplainer on the same game (a binary vector per coalition, the empty one as
    its background) enumerates every coalition of these 8 tokens: exact Shapley values."""
    players = fp32_game.players
    reference = shap.KernelExplainer(lambda masks: fp32_game.value(np.asarray(masks) > 0.5), np.zeros((1, players)))
    theirs = reference.shap_values(np.ones(players), nsamples=2**players, l1_reg=False, silent=True)
    exact = kernel_shap(fp32_game, samples=16, seed=0, exact_max_players=12)
    np.testing.assert_allclose(exact.values, theirs, atol=1e-4)
    sampled = shapley_sampling(fp32_game, samples=256, seed=0)
    assert spearmanr(sampled.values, theirs).statistic >= 0.95
    for values in (exact.values, sampled.values):
        assert abs(fp32_game.empty + values.sum() - fp32_game.full) < 1e-9
