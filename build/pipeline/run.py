"""``slimserve build``: train? -> export -> optimize -> compress -> validate (gate) -> manifest
-> bundle -> report. Each step is a function in its own module; this one only sequences them,
shows progress and guarantees that a failed build leaves nothing that looks valid.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build import paths
from slimserve.build.compression.stage import compress_and_gate, prepare_source
from slimserve.build.config import BuildConfig, load_config
from slimserve.build.errors import ConfigError, GateFailed, ModelError
from slimserve.build.gate.evaluate import evaluator_for
from slimserve.build.gate.explanations import (
    BACKGROUND_FILE,
    ExplainPlan,
    ExplanationReport,
    explained_output,
    global_importance,
    plan,
    unsupported,
)
from slimserve.build.gate.portability import (
    gate_machine,
    integer_portability,
    serving_options,
    verdict_scope,
)
from slimserve.build.gate.reference import Reference
from slimserve.build.gate.served import manifest_for
from slimserve.build.gate.validate import GateResult
from slimserve.build.pipeline import classification
from slimserve.build.pipeline.bundle import BundleReport, build_zip, sha256_file
from slimserve.build.pipeline.canary import record_canary
from slimserve.build.pipeline.huggingface import derive_config
from slimserve.build.pipeline.interface import interface_for
from slimserve.build.pipeline.onnxfile import (
    ServedInterface,
    check_declared,
    prepare_onnx,
    read_interface,
)
from slimserve.build.pipeline.openapi import render_for as render_openapi
from slimserve.build.pipeline.progress import Steps
from slimserve.build.pipeline.report import write_plot, write_report
from slimserve.build.pipeline.servecheck import check_served
from slimserve.build.pipeline.source import (
    call_user,
    load_callable,
    load_torch_model,
    resolve_weights,
)
from slimserve.handler.app import OPENAPI_FILE
from slimserve.handler.manifest import MANIFEST_FILE, Manifest, ModelFile
from slimserve.handler.model import load_model

MODEL_FILE = "model.onnx"
ZIP_FILE = "lambda.zip"
REPORT_FILE = "report.md"
PLOT_FILE = "report.png"
WORK_DIR = "work"
REFERENCE_FILE = "fp32.onnx"  # in WORK_DIR: the uncompressed export, kept for slimserve bench
# What a successful build leaves; all of it is removed first and on failure.
# A signature belongs to one build: a rebuild removes it (slimserve build --sign-key signs again),
# and so does synth's Dockerfile for package=image (written for the previous zip).
OUTPUTS = (MODEL_FILE, MANIFEST_FILE, ZIP_FILE, OPENAPI_FILE, BACKGROUND_FILE, paths.SIGNATURE_FILE, "Dockerfile")


@dataclass
class BuildResult:
    out: Path
    manifest: Manifest
    gate: GateResult
    bundle: BundleReport | None
    # Where the gate's verdict holds (every host of the architecture, or this instruction set only).
    verdict_scope: str = ""
    verdict_holds_only_here: bool = False


def default_out(config: BuildConfig) -> Path:
    return paths.dist_dir(config.root, config.name)


def _remove_outputs(out: Path, names: tuple[str, ...] = OUTPUTS) -> None:
    for name in names:
        (out / name).unlink(missing_ok=True)


def run_build(
    folder: Path,
    *,
    out: Path | None = None,
    overrides: dict[str, Any] | None = None,
    steps: Steps | None = None,
    precompile_bytecode: bool = True,
    keep_work: bool = False,
) -> BuildResult:
    """``keep_work``: keep every intermediate model in ``work/``; by default only the fp32
    export stays (``slimserve bench`` measures against it), whether the build passed or not."""
    steps = steps or Steps()
    config = derive_config(load_config(folder, overrides))
    out = (out or default_out(config)).resolve()
    work = out / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    # A previous build's report must not outlive it: only a gate failure of this build writes one
    # (it says FAILED); a build that stops on anything else leaves none.
    _remove_outputs(out, (*OUTPUTS, REPORT_FILE, PLOT_FILE))
    try:
        return _build(config, out, work, steps, precompile_bytecode)
    except BaseException:
        _remove_outputs(out)
        raise
    finally:
        if not keep_work:
            _clean_work(work)


def _clean_work(work: Path) -> None:
    for entry in work.iterdir():
        if entry.name != REFERENCE_FILE:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def load_source(config: BuildConfig, work: Path, steps: Steps) -> tuple[Path, Any, ServedInterface]:
    """The model as one normalized fp32 ONNX file (work/fp32.onnx), the PyTorch module (or
    None), and what the task serves of it. Everything declared in slimserve.toml is checked
    against the model's own interface."""
    source = config.source
    fp32_path = work / REFERENCE_FILE
    torch_model = None
    declared = config.export  # what the model's interface is checked against
    reserved = interface_for(config).reserved
    if source.module is not None:
        assert source.weights is not None
        weights = resolve_weights(config)  # in the example folder, or "package:<name>/<path>"
        if not weights.is_file():
            if source.train is None:
                raise ConfigError(f"weights file {weights} not found and no source.train given")
            with steps.step("train", f"{source.train} (weights file missing)"):
                call_user(load_callable(config, source.train, "source.train"), f"source.train {source.train}")
        with steps.step("export", f"PyTorch -> ONNX opset {config.export.opset}"):
            from slimserve.build.pipeline.export import export_onnx

            torch_model = load_torch_model(config)
            exported = export_onnx(torch_model, config.export, work / "export.onnx")
            notes, renamed = prepare_onnx(exported, fp32_path, what="the PyTorch export", reserved=reserved)
    elif source.huggingface is not None:
        with steps.step("export", f"Hugging Face folder {source.huggingface} -> ONNX opset {config.export.opset}"):
            from slimserve.build.pipeline import huggingface_torch

            torch_model = huggingface_torch.load_model(config)
            declared = huggingface_torch.export_config(config, torch_model)
            exported = huggingface_torch.export(torch_model, declared, work / "export.onnx")
            notes, renamed = prepare_onnx(exported, fp32_path, what="the Hugging Face export", reserved=reserved)
    else:
        assert source.onnx is not None
        with steps.step("load", f"ONNX model {source.onnx} (export skipped)"):
            notes, renamed = prepare_onnx(
                config.path(source.onnx), fp32_path, what=f"source.onnx {source.onnx}", reserved=reserved
            )
    for note in notes:
        steps.log(note)
    model = read_interface(fp32_path)
    if source.onnx is not None and "opset" in config.export.model_fields_set and model.opset != config.export.opset:
        raise ModelError(f"export.opset: declared {config.export.opset}, the model's is {model.opset}")
    declared_outputs = declared.outputs
    if declared_outputs is not None:
        declared_outputs = [spec.model_copy(update={"name": renamed.get(spec.name, spec.name)}) for spec in declared_outputs]
    model = replace(
        model,
        inputs=check_declared(declared.inputs, model.inputs, "export.inputs"),
        outputs=check_declared(declared_outputs, model.outputs, "export.outputs"),
    )
    served = interface_for(config).serve(config, model)
    for note in served.notes:
        steps.log(note)
    return fp32_path, torch_model, served


def _build(config: BuildConfig, out: Path, work: Path, steps: Steps, precompile_bytecode: bool) -> BuildResult:
    fp32_path, torch_model, served = load_source(config, work, steps)
    reference = Reference(fp32_path, torch_model, served.model.input_names, served)
    source_model, model_changes, model_sections = fp32_path, {}, []
    if config.prune is not None or config.distill is not None:
        what = "prune" if config.prune is not None else "distill"
        detail = (
            f"{config.prune.method}, sparsity {config.prune.sparsity:g}"
            if config.prune is not None
            else f"student {config.distill.student} on {config.distill.data}"
        )
        with steps.step(what, detail):
            source_model, model_changes, model_sections = prepare_source(config, reference, work, log=steps.log)
    with steps.step("reference", f"original model's outputs on held-out data ({config.validation.data})"):
        evaluator = evaluator_for(config, reference)
    outcome = compress_and_gate(config, reference, evaluator, source_model, work, steps)
    compressed_path, gate = outcome.path, outcome.gate
    applied = {**outcome.applied, **model_changes}
    outcome.sections[:0] = model_sections
    # The verdict is a measurement on this CPU: record which, and whether it transfers.
    machine = gate_machine()
    # The session options the gate ran the model with; the manifest makes the handler use them.
    serving = serving_options(compressed_path)
    portability = integer_portability(compressed_path, config.runtime.architecture, serving)
    gate.extra["gate_machine"] = machine
    gate.extra["int8_portability"] = portability.to_dict()
    scope = verdict_scope(portability, machine)
    steps.log(scope)

    sizes = {"reference_bytes": fp32_path.stat().st_size, "model_bytes": compressed_path.stat().st_size}
    settings = {
        "task": config.task,
        "runtime.python": config.runtime.python,
        "runtime.architecture": config.runtime.architecture,
        "validation.metric": config.validation.metric,
        "validation.tolerance": config.validation.tolerance,
        "runtime.onnxruntime": serving,
    }
    explain_plan, explanations = (None, None)
    if config.explain.enabled and gate.passed:
        explain_plan, explanations = _explain(config, served, fp32_path, compressed_path, steps)
        if explanations is not None:
            gate.extra.update(explanations.to_manifest())
            if config.validation.min_explanation_agreement is not None:
                gate.checks.append(explanations.check(config.validation.min_explanation_agreement))
    if outcome.failure is not None or not gate.passed:
        plot = write_plot(out / PLOT_FILE, name=config.name, gate=gate, sizes=sizes, explanations=explanations)
        write_report(
            out / REPORT_FILE, name=config.name, gate=gate, sizes=sizes, compression=applied,
            settings=settings, bundle=None, timings=steps.timings, plot=plot.name, verdict_scope=scope, explanations=explanations,
        )
        outcome.append_to_report(out / REPORT_FILE)
        raise outcome.failure or GateFailed(gate)

    model_path = out / MODEL_FILE
    shutil.copyfile(compressed_path, model_path)
    extra_files: dict[str, Path] = {}
    for name, path in interface_for(config).model_files(config).items():
        shutil.copyfile(path, out / name)
        extra_files[name] = out / name
    if explain_plan is not None and explain_plan.background is not None:
        np.save(out / BACKGROUND_FILE, explain_plan.background, allow_pickle=False)
        extra_files[BACKGROUND_FILE] = out / BACKGROUND_FILE
    manifest = manifest_for(
        config,
        served,
        model=ModelFile(file=MODEL_FILE, sha256=sha256_file(model_path), bytes=model_path.stat().st_size),
        files={name: sha256_file(path) for name, path in extra_files.items()},
        compression=applied,
        validation=gate.to_manifest(),
        sizes=sizes,
        onnxruntime=serving,
        explain=explain_plan.spec if explain_plan is not None else None,
    )
    manifest_path = out / MANIFEST_FILE
    manifest_path.write_text(manifest.to_json(), encoding="utf-8")
    with steps.step("serve check", "the handler loads the model and answers the held-out requests"):
        steps.log(check_served(config, out, manifest, evaluator, gate))
    manifest = record_canary(config, out, manifest)  # held-out requests the deploy replays first
    model_files = {MODEL_FILE: model_path, MANIFEST_FILE: manifest_path, **extra_files}
    # The API contract for this model, rendered by FastAPI here (build time) and served by the
    # handler at /openapi.json and /docs.
    openapi_path = out / OPENAPI_FILE
    openapi_path.write_text(render_openapi(load_model(out, intra_op_threads=1)), encoding="utf-8")
    model_files[OPENAPI_FILE] = openapi_path

    with steps.step("bundle", f"lambda.zip for Python {config.runtime.python} {config.runtime.architecture}"):
        bundle = build_zip(
            out / ZIP_FILE,
            model_files=model_files,
            task=config.task,
            text_input=classification.takes_text(config),
            python=config.runtime.python,
            architecture=config.runtime.architecture,
            extra_requirements=config.runtime.extra_requirements,
            precompile_bytecode=precompile_bytecode,
            log=steps.log,
        )
        steps.log(bundle.summary())

    plot = write_plot(out / PLOT_FILE, name=config.name, gate=gate, sizes=sizes, explanations=explanations)
    write_report(
        out / REPORT_FILE, name=config.name, gate=gate, sizes=sizes, compression=applied, settings=settings,
        bundle=bundle.to_dict(), timings=steps.timings, plot=plot.name, verdict_scope=scope, explanations=explanations,
    )
    outcome.append_to_report(out / REPORT_FILE)
    return BuildResult(
        out=out, manifest=manifest, gate=gate, bundle=bundle,
        verdict_scope=scope, verdict_holds_only_here=portability.holds_only_here(),
    )


def _explain(
    config: BuildConfig, served: ServedInterface, original: Path, shipped: Path, steps: Steps
) -> tuple[ExplainPlan | None, ExplanationReport | None]:
    """What POST .../explain offers, and the report's global importance, original vs shipped."""
    model_inputs = served.model.inputs
    explained = explained_output(config.task, served.scored_output, served.model.outputs)
    reason = unsupported(config, model_inputs, served.model.outputs, explained)
    if reason is not None:
        if config.validation.min_explanation_agreement is not None:
            raise ConfigError(f"validation.min_explanation_agreement: this model gets no explanations ({reason})")
        steps.log(f"explanations: not offered ({reason})")
        return None, None
    rows = config.explain.importance_samples
    with steps.step("explain", f"global importance on {rows} held-out samples, original vs shipped"):
        explain_plan = plan(config, model_inputs)
        report = global_importance(config, explain_plan, original, shipped, explained)
        steps.log(f"explanations: rank correlation (Spearman) original vs shipped {report.agreement:.4f}")
    return explain_plan, report
