"""Every error the build side (``slimserve`` CLI, pipeline, local emulator, deploy, bench) raises
on purpose, in one hierarchy.

Each class carries the CLI exit code it maps to, so the CLI turns any of them into one line on
stderr and that code, in one place (``slimserve.build.cli``):

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success
1     a runtime failure: a step could not run (install, bundle, CDK, the function)
2     a usage or configuration error: the command line, slimserve.toml or a target
3     the accuracy gate failed: nothing was shipped
====  ==========================================================================

This module imports nothing from slimserve, so any module may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: the gate's types live in slimserve.build.gate
    from slimserve.build.compression.results import SearchResult
    from slimserve.build.gate.validate import GateResult

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_GATE_FAILED = 3


class SlimserveBuildError(Exception):
    """Base of the build side's errors: the message is one clear sentence (or a short table)
    meant for the user as is, never a stack trace."""

    exit_code: int = EXIT_FAILURE


# --- usage and configuration (exit 2) --------------------------------------------------------


class UsageError(SlimserveBuildError, ValueError):
    """The command line asks for something that cannot be done as given."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """slimserve.toml is missing or wrong; the message says where and how to fix it."""


class PruneError(ConfigError):
    """The model cannot be pruned as configured (said precisely)."""


class ModelError(ConfigError):
    """The model cannot be served as given (said precisely): not an ONNX file, external data
    outside the model's folder, an opset outside 13-21, an output that is not a tensor, an
    interface that does not match what slimserve.toml declares, an export that fails."""


class TargetError(UsageError):
    """The target is not built, or an option is malformed."""


class CredentialsError(UsageError):
    """A command that acts on AWS (deploy, diff, destroy) found no AWS credentials; the message
    says how to provide them."""


class SignatureError(UsageError):
    """A bundle cannot be signed, or its signature is missing or does not verify against the
    configured public key: nothing was deployed."""


class StackNotDeployed(UsageError):
    """The target's stack does not exist in the account and region the credentials name."""


class RollbackRefused(UsageError):
    """``slimserve rollback`` will not point live at that version (gate, artefact, no such one)."""


# --- the gate (exit 3) ---------------------------------------------------------------------------


class GateFailed(SlimserveBuildError):
    """The compressed model did not keep the original's accuracy: nothing was shipped."""

    exit_code = EXIT_GATE_FAILED

    def __init__(self, gate: GateResult, message: str | None = None) -> None:
        super().__init__(message or gate.explain())
        self.gate = gate


class SearchFailed(GateFailed):
    """``compression.method = "auto"``: no candidate passed the gate (and the requirements);
    the message holds the candidate table."""

    def __init__(self, result: SearchResult, message: str, gate: GateResult | None = None) -> None:
        closest = result.closest()
        if gate is None:
            gate = closest.gate if closest is not None and closest.gate is not None else result.baseline.gate
        super().__init__(gate, message)
        self.result = result
        self.table = result.table


# --- runtime failures (exit 1) --------------------------------------------------------------------


class CompressionError(SlimserveBuildError, ValueError):
    """The compression settings cannot be applied to this model (said precisely, never ignored)."""


class ServeCheckFailed(SlimserveBuildError):
    """The handler (its own load path and task adapter, what Lambda runs) refused the built model
    or answered the held-out requests differently from what the gate scored: nothing was bundled."""


class BundleError(SlimserveBuildError):
    """Installing dependencies or packing the zip failed; the message says what to do."""


class LocalRunError(SlimserveBuildError):
    """A local run cannot go on; the message says why and what to do (shown to users as is)."""


class LocalPythonError(LocalRunError):
    """No usable interpreter, or installing packages for it failed."""


class TemplateError(LocalRunError, ValueError):
    """The template has no API the local gateway can emulate, or one it cannot read."""


class FunctionStartError(LocalRunError):
    """The function did not initialise: carries the error type and the process output tail."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        log_tail: Sequence[str] = (),
        document: dict[str, Any] | None = None,
    ) -> None:
        self.error_type = error_type
        self.log_tail = list(log_tail)
        # The message alone (str() appends the output tail), and the runtime's init error
        # document when it posted one (/init/error): what Lambda's Invoke API would return.
        self.message = message
        self.document = document
        details = "\n".join(self.log_tail[-25:])
        super().__init__(f"{message}\n--- function output ---\n{details}" if details else message)


class FunctionError(LocalRunError):
    """The function ran and failed (exception, timeout, crash): ``document`` is Lambda's error
    payload (``errorType``, ``errorMessage``, ``stackTrace``...)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        super().__init__(f"the function failed: {document.get('errorType')}: {document.get('errorMessage')}")


class CdkError(SlimserveBuildError):
    """The CDK CLI could not be installed or run, or it failed."""


class RemoteError(SlimserveBuildError):
    """A request to a deployed API could not be made."""


class AwsError(SlimserveBuildError):
    """An AWS API call (CloudFormation, Lambda, CodeDeploy, S3) failed; the message is AWS's."""
