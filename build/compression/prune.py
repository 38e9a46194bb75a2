"""Prune a PyTorch model before export ([prune] in slimserve.toml).

- ``magnitude``: global unstructured magnitude pruning (``torch.nn.utils.prune``): the
  ``sparsity`` fraction of all Linear / Conv weights with the smallest |w|, across layers, is
  set to zero. Shapes do not change, so latency does not either; zeros compress, so the zipped
  model shrinks.
- ``structured``: whole units are removed and the layers physically shrink: hidden neurons
  between two Linear layers (through element-wise activations), output channels between two
  Conv2d layers (with their BatchNorm2d), attention heads of BERT-style self-attention (query /
  key / value rows and the output projection's columns), and feed-forward neurons of BERT-style
  layers (intermediate.dense -> output.dense). ``sparsity`` is the fraction of units removed
  in each prunable group, lowest L2 importance first. Shapes shrink: fewer bytes, less compute.

An optional ``finetune = "file.py:function"`` is called as ``function(model)`` after pruning
(it may return a new model) to win back accuracy. Magnitude pruning keeps its masks during
the fine-tune, so pruned weights stay zero.

``lambda_effect`` measures what pruning buys on Lambda: ONNX bytes, zipped bytes (Deflate at
level 9, as in lambda.zip) and latency, before vs after.
"""

from __future__ import annotations

import copy
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimserve.build.config import PruneConfig
from slimserve.build.errors import ConfigError, PruneError

ELEMENTWISE = (
    "ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "Hardtanh", "Hardswish",
    "Mish", "Softplus", "Dropout", "Identity",
)


@dataclass
class _Group:
    """Units (rows of the producers' weights) that feed the consumers' input columns."""

    name: str
    kind: str  # neurons | channels | heads | ffn-neurons
    producers: list[Any]  # modules whose output rows (dim 0) are removed
    consumers: list[Any]  # modules whose input columns (dim 1) are removed
    unit: int = 1  # rows per unit (head size for heads)
    norms: list[Any] | None = None  # BatchNorm2d between producer and consumer
    owner: Any = None  # self-attention module whose head count is updated

    @property
    def units(self) -> int:
        return self.producers[0].weight.shape[0] // self.unit


def _count(model: Any) -> tuple[int, int]:
    total = nonzero = 0
    for parameter in model.parameters():
        total += parameter.numel()
        nonzero += int((parameter != 0).sum())
    return total, nonzero


def _excluded(name: str, exclude: list[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in exclude)


def prunable_layers(model: Any, exclude: list[str] = ()) -> list[tuple[str, Any]]:
    from torch import nn

    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and not _excluded(name, list(exclude))
    ]


def magnitude_prune(model: Any, sparsity: float, exclude: list[str] = ()) -> list[tuple[Any, str]]:
    """Global L1 unstructured pruning; returns the (module, "weight") pairs, masks still attached."""
    from torch.nn.utils import prune

    layers = prunable_layers(model, exclude)
    if not layers:
        raise PruneError("prune: no Linear or Conv layer to prune (all excluded?)")
    parameters = [(module, "weight") for _, module in layers]
    prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=sparsity)
    return parameters


def _remove_masks(parameters: list[tuple[Any, str]]) -> None:
    from torch.nn.utils import prune

    for module, name in parameters:
        if prune.is_pruned(module):
            prune.remove(module, name)


def structured_groups(model: Any, exclude: list[str] = ()) -> list[_Group]:
    """Every place whole units can be removed without changing what the model computes
    elsewhere: see the module docstring for the supported patterns."""
    from torch import nn

    groups: list[_Group] = []
    names = {id(module): name for name, module in model.named_modules()}
    claimed: set[int] = set()

    for module_name, module in model.named_modules():
        # BERT-style attention: X.self.{query,key,value} -> X.output.dense, heads of head_size rows.
        attention = getattr(module, "self", None)
        output = getattr(getattr(module, "output", None), "dense", None)
        if attention is not None and isinstance(output, nn.Linear):
            projections = [getattr(attention, key, None) for key in ("query", "key", "value")]
            head_size = getattr(attention, "attention_head_size", None) or getattr(attention, "head_size", None)
            if all(isinstance(p, nn.Linear) for p in projections) and head_size:
                name = names[id(attention)]
                if not _excluded(name, list(exclude)):
                    groups.append(_Group(f"{name} heads", "heads", projections, [output], int(head_size), owner=attention))
                    claimed.update(id(p) for p in projections)
        # BERT-style feed-forward: X.intermediate.dense -> X.output.dense.
        intermediate = getattr(getattr(module, "intermediate", None), "dense", None)
        if (
            isinstance(intermediate, nn.Linear) and isinstance(output, nn.Linear) and attention is None
            and not _excluded(module_name, list(exclude)) and id(intermediate) not in claimed
        ):
            groups.append(_Group(f"{module_name} feed-forward", "ffn-neurons", [intermediate], [output]))
            claimed.add(id(intermediate))
        # Sequential chains: Linear -> elementwise* -> Linear; Conv2d -> BatchNorm2d? -> elementwise* -> Conv2d.
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for index, (child_name, child) in enumerate(children):
                if not isinstance(child, (nn.Linear, nn.Conv2d)) or id(child) in claimed:
                    continue
                full = f"{module_name}.{child_name}" if module_name else child_name
                if _excluded(full, list(exclude)):
                    continue
                norms, follower = [], None
                for _, later in children[index + 1 :]:
                    if isinstance(later, nn.BatchNorm2d) and isinstance(child, nn.Conv2d):
                        norms.append(later)
                    elif type(later).__name__ in ELEMENTWISE:
                        continue
                    else:
                        follower = later
                        break
                same_kind = isinstance(follower, type(child)) and (
                    isinstance(child, nn.Linear) or getattr(follower, "groups", 1) == 1 == getattr(child, "groups", 1)
                )
                if same_kind:
                    kind = "neurons" if isinstance(child, nn.Linear) else "channels"
                    groups.append(_Group(full, kind, [child], [follower], norms=norms))
                    claimed.add(id(child))
    return groups


def _importance(group: _Group) -> Any:
    """Per unit: L2 norm of its producer rows times that of its consumer columns (a unit with
    small incoming or outgoing weights contributes little)."""
    import torch

    incoming = sum(p.weight.detach().reshape(p.weight.shape[0], -1).pow(2).sum(1) for p in group.producers)
    outgoing = sum(
        c.weight.detach().transpose(0, 1).reshape(c.weight.shape[1], -1).pow(2).sum(1) for c in group.consumers
    )
    score = (incoming.sqrt() * outgoing.sqrt()).reshape(group.units, group.unit).sum(1)
    return torch.as_tensor(score)


def _shrink(group: _Group, keep_units: Any) -> None:
    import torch
    from torch import nn

    rows = torch.cat([torch.arange(u * group.unit, (u + 1) * group.unit) for u in keep_units.tolist()])
    for producer in group.producers:
        producer.weight = nn.Parameter(producer.weight.detach()[rows].clone())
        if producer.bias is not None:
            producer.bias = nn.Parameter(producer.bias.detach()[rows].clone())
        if isinstance(producer, nn.Linear):
            producer.out_features = len(rows)
        else:
            producer.out_channels = len(rows)
    for norm in group.norms or []:
        norm.weight = nn.Parameter(norm.weight.detach()[rows].clone())
        norm.bias = nn.Parameter(norm.bias.detach()[rows].clone())
        norm.running_mean = norm.running_mean[rows].clone()
        norm.running_var = norm.running_var[rows].clone()
        norm.num_features = len(rows)
    for consumer in group.consumers:
        consumer.weight = nn.Parameter(consumer.weight.detach()[:, rows].clone())
        if isinstance(consumer, nn.Linear):
            consumer.in_features = len(rows)
        else:
            consumer.in_channels = len(rows)
    if group.owner is not None:
        heads = len(keep_units)
        for attribute in ("num_attention_heads", "heads", "num_heads"):
            if isinstance(getattr(group.owner, attribute, None), int):
                setattr(group.owner, attribute, heads)
        if isinstance(getattr(group.owner, "all_head_size", None), int):
            group.owner.all_head_size = heads * group.unit


def structured_prune(model: Any, sparsity: float, exclude: list[str] = ()) -> list[dict[str, Any]]:
    """Remove ``sparsity`` of the units of every group (at least one unit always stays)."""
    import torch

    groups = structured_groups(model, exclude)
    if not groups:
        raise PruneError(
            "prune: structured pruning found nothing to shrink: it handles Linear -> activation -> Linear "
            "and Conv2d -> (BatchNorm2d) -> activation -> Conv2d inside nn.Sequential, and BERT-style "
            "attention heads / feed-forward layers; use method = 'magnitude' for other architectures"
        )
    changes = []
    for group in groups:
        units = group.units
        keep = max(1, units - round(units * sparsity))
        order = torch.argsort(_importance(group), descending=True)
        kept = torch.sort(order[:keep]).values
        _shrink(group, kept)
        changes.append({"group": group.name, "kind": group.kind, "units_before": units, "units_after": keep})
    return changes


def prune_model(
    model: Any,
    config: PruneConfig,
    *,
    finetune: Callable[[Any], Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Prune a copy of ``model`` (the original stays the gate's reference); fine-tune it if
    given; return (pruned model in eval mode, report for the manifest / report)."""
    log = log or (lambda message: None)
    pruned = copy.deepcopy(model)
    params_before, nonzero_before = _count(pruned)
    report: dict[str, Any] = {"method": config.method, "sparsity": config.sparsity, "exclude": list(config.exclude)}
    if config.method == "magnitude":
        masked = magnitude_prune(pruned, config.sparsity, config.exclude)
        if finetune is not None:
            pruned.train()
            result = finetune(pruned)  # masks stay attached: pruned weights remain zero
            pruned = result if result is not None else pruned
            report["finetuned"] = True
        _remove_masks(masked)
    else:
        report["groups"] = structured_prune(pruned, config.sparsity, config.exclude)
        if finetune is not None:
            pruned.train()
            result = finetune(pruned)
            pruned = result if result is not None else pruned
            report["finetuned"] = True
    pruned.eval()
    params_after, nonzero_after = _count(pruned)
    report.update(
        parameters_before=params_before,
        parameters_after=params_after,
        nonzero_before=nonzero_before,
        nonzero_after=nonzero_after,
        weight_sparsity=1 - nonzero_after / params_after if params_after else 0.0,
    )
    log(
        f"pruned ({config.method}, sparsity {config.sparsity:g}): {params_before:,} -> {params_after:,} parameters, "
        f"{nonzero_before:,} -> {nonzero_after:,} nonzero"
        + (" (fine-tuned)" if report.get("finetuned") else "")
    )
    return pruned, report


def zipped_bytes(path: Path) -> int:
    """Bytes of ``path`` alone in a Deflate level-9 zip (as lambda.zip stores the model)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, path.name)
    return len(buffer.getvalue())


def lambda_effect(before: Path, after: Path, *, threads: int = 1, free_dims: list[int] | None = None, runs: int = 200) -> dict[str, Any]:
    """What pruning buys on Lambda: model bytes, zipped bytes, latency (interleaved timing)."""
    from slimserve.build.compression.latency import compare

    timings = compare({"before": before, "after": after}, threads=threads, runs=runs, free_dims=free_dims or [1, 16])
    effect = {}
    for label, path in (("before", before), ("after", after)):
        effect[label] = {
            "onnx_bytes": path.stat().st_size,
            "zipped_bytes": zipped_bytes(path),
            "latency_ms": timings[label].median_ms,
        }
    effect["zipped_ratio"] = effect["after"]["zipped_bytes"] / effect["before"]["zipped_bytes"]
    effect["latency_ratio"] = effect["after"]["latency_ms"] / effect["before"]["latency_ms"]
    return effect


def markdown(report: dict[str, Any], effect: dict[str, Any] | None = None) -> str:
    lines = [
        f"## Pruning ({report['method']}, sparsity {report['sparsity']:g}"
        + (", fine-tuned" if report.get("finetuned") else "") + ")",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| parameters | {report['parameters_before']:,} | {report['parameters_after']:,} |",
        f"| nonzero parameters | {report['nonzero_before']:,} | {report['nonzero_after']:,} |",
    ]
    if effect:
        for key, label in (("onnx_bytes", "fp32 ONNX bytes"), ("zipped_bytes", "zipped bytes"), ("latency_ms", "latency ms")):
            before, after = effect["before"][key], effect["after"][key]
            fmt = "{:,.4g}" if key == "latency_ms" else "{:,}"
            lines.append(f"| {label} | {fmt.format(before)} | {fmt.format(after)} |")
    for group in report.get("groups", []):
        lines.append(f"| {group['group']} ({group['kind']}) | {group['units_before']} | {group['units_after']} |")
    return "\n".join(lines) + "\n"


def prune_for_build(config: Any, model: Any, log: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """``prune_model`` with the [prune] section of a BuildConfig, resolving ``prune.finetune``."""
    from slimserve.build.pipeline.source import load_callable

    settings = config.prune
    if settings is None:
        raise ConfigError("prune_for_build() needs a [prune] section in slimserve.toml")
    finetune = load_callable(config, settings.finetune, "prune.finetune") if settings.finetune else None
    return prune_model(model, settings, finetune=finetune, log=log)
