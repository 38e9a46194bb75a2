"""Sizes derived from the options and the manifest: threads, /tmp, SnapStart, reserved concurrency.

Pure functions of the option values (``resolve_settings`` in options.py calls them), each rule
with the Lambda fact behind it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from slimserve.infra.errors import OptionsError

if TYPE_CHECKING:
    from slimserve.infra.options import PackageType, StackOptions

# Lambda gives one full vCPU per 1,769 MB of memory and at most 6 vCPUs (10,240 MB).
MB_PER_VCPU = 1769
MAX_VCPUS = 6

# Lambda's default /tmp, and the most SnapStart supports.
DEFAULT_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10240
# Room in /tmp beside a downloaded model (partial download file, onnxruntime scratch).
EPHEMERAL_HEADROOM_MB = 64

SNAPSTART_MIN_PYTHON = (3, 12)

# The default reserved concurrency stops following rate x timeout here (see reserved_concurrency).
DEFAULT_RESERVED_CONCURRENCY_CAP = 100


def reserved_concurrency(options: StackOptions, timeout_s: int) -> int | None:
    """The function's reserved concurrency: a ceiling on what it can run (and cost) at once.

    Default: ceil(throttle_rate_limit x timeout_s), at most DEFAULT_RESERVED_CONCURRENCY_CAP.
    By Little's law the executions in flight are the arrival rate times the time each takes; the
    stage admits at most throttle_rate_limit requests/s and each ends by timeout_s, so rate x
    timeout executions serve everything the API can let in even if every request ran to its
    timeout (e.g. 2 rps x 10 s = 20). Above the cap the default stops following that product:
    Lambda keeps 100 of an account's concurrency unreserved (a default 1,000 account can reserve
    900 across all its functions), and 100 executions still serve the default 50 rps while
    requests average under 2 s, far slower than inference here; slower requests are a fault the
    throttle and duration alarms report. Never below provisioned_concurrency, which counts
    against it.
    """
    if options.reserved_concurrency == "off":
        return None
    if isinstance(options.reserved_concurrency, int):
        return options.reserved_concurrency
    derived = min(
        math.ceil(options.throttle_rate_limit * timeout_s), DEFAULT_RESERVED_CONCURRENCY_CAP
    )
    return max(derived, options.provisioned_concurrency, 1)




def threads_for_memory(memory_mb: int) -> int:
    """onnxruntime intra-op threads for a memory size: the vCPUs Lambda gives, rounded.

    Rounding (not flooring) because Lambda exposes whole cores and shares time between them:
    at 3,008 MB (1.7 vCPU) two threads finish sooner than one.
    """
    return max(1, min(MAX_VCPUS, round(memory_mb / MB_PER_VCPU)))


def ephemeral_storage_mb(package: PackageType, model_bytes: int) -> int:
    if package != "s3":
        return DEFAULT_EPHEMERAL_MB
    needed = math.ceil(model_bytes / (1024 * 1024)) + EPHEMERAL_HEADROOM_MB
    if needed > MAX_EPHEMERAL_MB:
        raise OptionsError(
            f"package=s3 downloads the model to /tmp, which holds at most {MAX_EPHEMERAL_MB} MiB; "
            f"this model needs {needed} MiB"
        )
    return max(DEFAULT_EPHEMERAL_MB, needed)


def snapstart_applies(options: StackOptions, python: str, ephemeral_mb: int) -> bool:
    """SnapStart on published versions wherever Lambda supports it, unless the user opted out."""
    major, minor = (int(part) for part in python.split("."))
    reasons_not = []
    if (major, minor) < SNAPSTART_MIN_PYTHON:
        reasons_not.append(
            f"SnapStart needs Python 3.12 or newer (manifest runtime.python is {python})"
        )
    if ephemeral_mb > DEFAULT_EPHEMERAL_MB:
        reasons_not.append(
            f"SnapStart supports at most {DEFAULT_EPHEMERAL_MB} MiB of /tmp "
            f"(package=s3 needs {ephemeral_mb} MiB for this model)"
        )
    if options.snapstart is None:
        return (
            not reasons_not and options.package != "image" and options.provisioned_concurrency == 0
        )
    if options.snapstart and reasons_not:
        raise OptionsError("snapstart=true is not possible: " + "; ".join(reasons_not))
    return options.snapstart
