"""docs/digits-explanation.png: pixel attributions of the built digits model, as the API gives them.

Four held-out images; for each, the image and its attributions to the predicted class's logit
(POST /v2/models/digits/explain, default method and budget), red for pixels that raise the
logit, blue for those that lower it. Run after `slimserve build examples/digits`:

    .venv/bin/python examples/digits/explain_figure.py docs/digits-explanation.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import heldout  # noqa: E402

from slimserve.build.figures import pyplot, save_figure  # noqa: E402
from slimserve.handler.app import create_app  # noqa: E402
from slimserve.handler.model import load_model  # noqa: E402

ROWS = (0, 7, 21, 99)


def explain(service, row: np.ndarray) -> dict:
    body = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row.tolist()}]}
    document = json.loads(service.explain("digits", None, json.dumps(body).encode(), None).body)
    return {"parameters": document["parameters"], **{out["name"]: out["data"] for out in document["outputs"]}}


def main(destination: Path) -> None:
    service = create_app(load_model(HERE / "dist" / "digits", intra_op_threads=1)).service
    pixels, _ = heldout()
    figure, axes = pyplot().subplots(2, len(ROWS), figsize=(2.6 * len(ROWS), 5.4))
    for column, index in enumerate(ROWS):
        result = explain(service, pixels["pixels"][index])
        attributions = np.array(result["attributions"]).reshape(8, 8)
        scale = float(np.abs(attributions).max())
        axes[0, column].imshow(pixels["pixels"][index].reshape(8, 8), cmap="gray_r")
        axes[0, column].set_title(f"predicted {result['parameters']['label']}")
        axes[1, column].imshow(attributions, cmap="RdBu_r", vmin=-scale, vmax=scale)
        axes[1, column].set_title(
            f"base {result['base_value'][0]:.1f} + sum = {result['parameters']['output_value']:.1f}", fontsize=8
        )
        for axis in axes[:, column]:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle("digits: Kernel SHAP pixel attributions to the predicted class's logit")
    save_figure(figure, destination)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/digits-explanation.png"))
