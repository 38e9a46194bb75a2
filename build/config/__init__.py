"""``slimserve.toml``, the project's configuration: its schema (``schema``) and its one loader
(``load``). Every command that reads the file (build, local, invoke, synth, deploy, diff,
destroy, bench) goes through ``load_config``."""

from slimserve.build.config.compression import (
    AutoConfig,
    CandidateConfig,
    CompressionConfig,
    DistillConfig,
    PruneConfig,
)
from slimserve.build.config.load import load_config, unknown_key_message
from slimserve.build.config.schema import (
    BuildConfig,
    ExportConfig,
    RuntimeConfig,
    SourceConfig,
    ValidationConfig,
)

__all__ = [
    "AutoConfig",
    "BuildConfig",
    "CandidateConfig",
    "CompressionConfig",
    "DistillConfig",
    "ExportConfig",
    "PruneConfig",
    "RuntimeConfig",
    "SourceConfig",
    "ValidationConfig",
    "load_config",
    "unknown_key_message",
]
