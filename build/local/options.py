"""``LocalRunOptions``: how ``slimserve local`` / ``slimserve invoke --event`` run a build, in one
frozen bag passed through ``serve``, ``running`` and ``invoke_event`` (build/local/run.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimserve.build import paths
from slimserve.build.errors import LocalRunError
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.events import ApiType
from slimserve.build.local.apigw.server import IDLE_TIMEOUT_S
from slimserve.build.local.function import DEFAULT_INIT_TIMEOUT_S

# A synthesized CloudFormation template: a JSON file or the parsed document.
TemplateInput = Path | str | Mapping[str, Any]


@dataclass(frozen=True)
class LocalRunOptions:
    """What to emulate, how to run the function, and where the gateway listens.

    What the deployed API and function look like: ``config`` as given; else what ``template``
    describes; else what the stack synthesized with ``stack_options`` describes (``slimserve
    synth``'s app, cached); else ``GatewayConfig.from_manifest(manifest, api_type=api_type)``
    (fast: no synthesis). At most one of the three. ``invoke_event`` takes the function's
    timeout, memory and environment from it; the gateway settings apply to ``running`` only.
    """

    config: GatewayConfig | None = None
    template: TemplateInput | None = None
    stack_options: Mapping[str, Any] | None = None
    api_type: ApiType = "http"
    api_key: str | None = None  # local value of the template's API keys (default: random)
    python: str | None = None  # a version ("3.12") or an interpreter path; default: the zip's
    concurrency: int = 1  # execution environments (requests served side by side)
    init_timeout_s: float = DEFAULT_INIT_TIMEOUT_S
    cache_dir: Path | None = None  # default: paths.cache_dir()
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    idle_timeout_s: float = IDLE_TIMEOUT_S  # a connection silent this long is closed

    def __post_init__(self) -> None:
        given = [
            name
            for name, value in (
                ("config", self.config),
                ("template", self.template),
                ("stack_options", self.stack_options),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise LocalRunError(
                f"give at most one of config, template and stack_options (got {', '.join(given)})"
            )

    def cache(self) -> Path:
        """The cache root, absolute: task roots, runtime client, emulation packages, templates."""
        return (self.cache_dir or paths.cache_dir()).resolve()
