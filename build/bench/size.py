"""Section 2, size: the fp32 ONNX export, the shipped model, and lambda.zip zipped and unzipped
against Lambda's limits for zip deployments (bytes counted from the files themselves)."""

from __future__ import annotations

import zipfile
from typing import Any

from slimserve.build.bench.common import Example
from slimserve.build.bench.stats import ratio
from slimserve.build.pipeline.bundle import UNZIPPED_LIMIT, ZIP_DIRECT_UPLOAD_LIMIT


def zip_contents(zip_path: Any) -> dict[str, int]:
    """Unzipped bytes and file count, plus the bytes of the top-level entries (what weighs)."""
    by_top: dict[str, int] = {}
    total = files = 0
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            files += 1
            total += info.file_size
            top = info.filename.split("/", 1)[0]
            by_top[top] = by_top.get(top, 0) + info.file_size
            if info.filename.endswith(".pyc"):
                by_top["(all .pyc)"] = by_top.get("(all .pyc)", 0) + info.file_size
    return {"unzipped_bytes": total, "files": files, **{f"top:{key}": value for key, value in by_top.items()}}


def initializer_bytes(model_path: Any) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Bytes of the model's weights by element type, and its largest initializers."""
    import numpy as np
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    by_type: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for tensor in model.graph.initializer:
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 0
        dtype = onnx.TensorProto.DataType.Name(tensor.data_type)
        size = count * itemsize
        by_type[dtype] = by_type.get(dtype, 0) + size
        rows.append({"name": tensor.name, "dtype": dtype, "bytes": size})
    rows.sort(key=lambda row: -row["bytes"])
    return by_type, rows


def measure_size(example: Example) -> dict[str, Any]:
    fp32 = example.fp32_path.stat().st_size if example.fp32_path.is_file() else None
    shipped = example.model_path.stat().st_size
    zipped = example.zip_path.stat().st_size
    contents = zip_contents(example.zip_path)
    top = {key[4:]: value for key, value in contents.items() if key.startswith("top:")}
    largest = dict(sorted(top.items(), key=lambda item: -item[1])[:8])
    by_type, initializers = initializer_bytes(example.model_path)
    return {
        "shipped_initializers_by_type_bytes": by_type,
        "shipped_largest_initializers": initializers[:10],
        "shipped_float_initializers_bytes": [row["bytes"] for row in initializers if row["dtype"] == "FLOAT"],
        "fp32_onnx_bytes": fp32,
        "shipped_model_bytes": shipped,
        "shipped_vs_fp32_pct": None if fp32 is None else 100.0 * shipped / fp32,
        "fp32_vs_shipped_x": ratio(fp32, shipped),
        "zip_zipped_bytes": zipped,
        "zip_unzipped_bytes": contents["unzipped_bytes"],
        "zip_files": contents["files"],
        "zip_largest_entries_bytes": largest,
        "limit_zipped_direct_upload_bytes": ZIP_DIRECT_UPLOAD_LIMIT,
        "limit_unzipped_bytes": UNZIPPED_LIMIT,
        "zipped_of_limit_pct": 100.0 * zipped / ZIP_DIRECT_UPLOAD_LIMIT,
        "unzipped_of_limit_pct": 100.0 * contents["unzipped_bytes"] / UNZIPPED_LIMIT,
        "fits_direct_upload": zipped <= ZIP_DIRECT_UPLOAD_LIMIT,
        "fits_unzipped": contents["unzipped_bytes"] <= UNZIPPED_LIMIT,
        "architecture": example.manifest.runtime.architecture,
        "target_python": example.manifest.runtime.python,
        "compression": example.manifest.compression,
        "gate_passed": None if example.manifest.validation is None else example.manifest.validation.passed,
        "gate": None if example.manifest.validation is None else example.manifest.validation.model_dump(mode="json"),
    }
