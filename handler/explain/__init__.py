"""Explanations (``POST /v2/models/{name}/explain``): attributions of one served output to the
parts of one input, with numpy and onnxruntime only (docs/explanations.md).

- shapley.py: the estimators (exact and sampled Kernel SHAP, Shapley sampling, leave-one-out);
- games.py: features, patches or tokens as players, coalitions batched into model runs;
- budget.py: the cost estimate checked against the invocation's remaining time;
- params.py: the request's method, samples and seed;
- explainer.py: one model's explainer (what is explained, the response tensors).

Imported on the first explain request only: cold start never pays for it.
"""

from slimserve.handler.explain.explainer import Explainer, Explanation

__all__ = ["Explainer", "Explanation"]
