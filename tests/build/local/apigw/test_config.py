"""What the local gateway emulates when nothing else says (build/local/apigw/config.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.routing import Route
from slimserve.handler.manifest import load_manifest


def test_config_defaults_come_from_the_manifest(tmp_path: Path) -> None:
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(
        json.dumps(
            {
                "schema": 1,
                "name": "m",
                "model": {"file": "model.onnx", "sha256": "0" * 64, "bytes": 0},
                "inputs": [],
                "outputs": [],
                "runtime": {"timeout_s": 7, "memory_mb": 512},
            }
        )
    )
    manifest = load_manifest(manifest_file)
    http = GatewayConfig.from_manifest(manifest)
    assert (http.api_type, http.payload_format, http.stage) == ("http", "2.0", "$default")
    assert (http.function_timeout_s, http.memory_mb, http.integration_timeout_s) == (7, 512, 30)
    assert http.routes == (Route("ANY", "$default"),)
    rest = GatewayConfig.from_manifest(manifest, api_type="rest")
    assert (rest.payload_format, rest.stage, rest.integration_timeout_s) == ("1.0", "prod", 29)
    assert rest.stage_prefix == "/prod"


def test_inconsistent_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="payload format 1.0"):
        GatewayConfig(api_type="rest", payload_format="2.0", stage="prod")
    with pytest.raises(ValueError, match="named stages"):
        GatewayConfig(api_type="rest", payload_format="1.0")
    with pytest.raises(ValueError, match="positive"):
        GatewayConfig(integration_timeout_s=0)
