"""Signed bundles (OpenSSF model signing, EC keys, offline): a signed build verifies; a bundle
changed after signing, a wrong key and a missing signature are refused by `slimserve deploy`
in one line, before anything is synthesized or uploaded (no credentials are even asked for)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimserve.build.cli import app
from slimserve.build.deploy.signing import sign_bundle, signed_files, verify_bundle
from slimserve.build.errors import SignatureError
from slimserve.build.paths import SIGNATURE_FILE
from slimserve.handler.manifest import Manifest, ModelFile, TensorSpec, load_manifest

from toymodels import MINIMAL_CONFIG

runner = CliRunner()
MODEL = b"onnx bytes" * 100


def write_keys(folder: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {"ours": write_keys(folder, "ours"), "theirs": write_keys(folder, "theirs")}


def make_bundle(folder: Path) -> Path:
    """dist/toy/: manifest.json, model.onnx, tokenizer.json (a manifest file), lambda.zip, and
    files no deploy uses (report.md)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(MODEL)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "lambda.zip").write_bytes(b"PK zip bytes")
    (folder / "report.md").write_text("# report\n")
    manifest = Manifest(
        name="toy",
        model=ModelFile(file="model.onnx", sha256=hashlib.sha256(MODEL).hexdigest(), bytes=len(MODEL)),
        files={"tokenizer.json": hashlib.sha256(b"{}").hexdigest()},
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, 2])],
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "dist" / "toy")


def manifest_of(folder: Path) -> Manifest:
    return load_manifest(folder / "manifest.json")


def test_the_signature_covers_what_a_deploy_uses(bundle: Path) -> None:
    assert signed_files(manifest_of(bundle)) == ["lambda.zip", "manifest.json", "model.onnx", "tokenizer.json"]


def test_a_signed_bundle_verifies_and_unsigned_files_may_change(bundle: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    private, public = keys["ours"]
    signature = sign_bundle(bundle, manifest_of(bundle), private)
    assert signature == bundle / SIGNATURE_FILE
    # A Sigstore bundle: a DSSE envelope over an in-toto statement.
    assert json.loads(signature.read_text())["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    (bundle / "report.md").write_text("changed: not deployed, not signed\n")
    (bundle / "cdk.out").mkdir()  # what synth writes beside the build
    verify_bundle(bundle, manifest_of(bundle), public)


@pytest.mark.parametrize("changed", ["lambda.zip", "model.onnx", "manifest.json", "tokenizer.json"])
def test_a_file_changed_after_signing_is_refused(bundle: Path, keys: dict[str, tuple[Path, Path]], changed: str) -> None:
    private, public = keys["ours"]
    sign_bundle(bundle, manifest_of(bundle), private)
    path = bundle / changed
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(SignatureError, match=re.escape(f"does not verify against {public} (changed since signing: {changed})")):
        verify_bundle(bundle, manifest_of(bundle), public)


def test_a_removed_file_is_refused(bundle: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    private, public = keys["ours"]
    sign_bundle(bundle, manifest_of(bundle), private)
    (bundle / "tokenizer.json").unlink()
    with pytest.raises(SignatureError, match=re.escape("(missing: tokenizer.json)")):
        verify_bundle(bundle, manifest_of(bundle), public)


# --- through the CLI: refused before anything happens ------------------------------------------


def deploy(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["deploy", *map(str, args), "--yes"])
    return result.exit_code, result.stderr


@pytest.fixture()
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach AWS or the CDK fails the test."""
    from slimserve.build.deploy import cdk, credentials

    def forbidden(*args: object, **kwargs: object) -> None:
        pytest.fail("deploy went past the signature check")

    monkeypatch.setattr(cdk, "deploy", forbidden)
    monkeypatch.setattr(credentials, "require_aws_credentials", forbidden)


def test_deploy_refuses_an_unsigned_bundle(bundle: Path, keys: dict[str, tuple[Path, Path]], no_aws: None) -> None:
    code, stderr = deploy(bundle, "--verify-key", keys["ours"][1])
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: refusing to deploy {bundle}: it is not signed (no model.sig) and a public key is configured "
        f"({keys['ours'][1]}); sign it with `slimserve build --sign-key <private key>`"
    ]
    assert not (bundle / "cdk.out").exists()


def test_deploy_refuses_a_bundle_signed_by_another_key(bundle: Path, keys: dict[str, tuple[Path, Path]], no_aws: None) -> None:
    sign_bundle(bundle, manifest_of(bundle), keys["theirs"][0])
    code, stderr = deploy(bundle, "--verify-key", keys["ours"][1])
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: refusing to deploy {bundle}: its signature does not verify against {keys['ours'][1]} (Key mismatch: "
        "The public key hash in the signature's verification material does not match the provided public key.)"
    ]
    assert not (bundle / "cdk.out").exists()


def test_deploy_refuses_a_bundle_altered_after_signing(bundle: Path, keys: dict[str, tuple[Path, Path]], no_aws: None) -> None:
    sign_bundle(bundle, manifest_of(bundle), keys["ours"][0])
    (bundle / "lambda.zip").write_bytes(b"PK another handler")
    code, stderr = deploy(bundle, "--verify-key", keys["ours"][1])
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert line == f"error: refusing to deploy {bundle}: its signature does not verify against {keys['ours'][1]} (changed since signing: lambda.zip)"


def test_the_project_public_key_is_used_without_a_flag(tmp_path: Path, keys: dict[str, tuple[Path, Path]], no_aws: None) -> None:
    project = tmp_path / "project"
    project.mkdir()
    public = keys["ours"][1]
    (project / "slimserve.toml").write_text(MINIMAL_CONFIG + f'[signing]\npublic_key = "{public}"\n')
    make_bundle(project / "dist" / "toy")
    code, stderr = deploy(project)
    assert code == 2
    assert "it is not signed (no model.sig)" in stderr


def test_a_signed_bundle_passes_the_check_and_deploy_goes_on(
    bundle: Path, keys: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from slimserve.build.deploy import cdk, credentials

    sign_bundle(bundle, manifest_of(bundle), keys["ours"][0])
    deployed: list[Path] = []
    monkeypatch.setattr(credentials, "require_aws_credentials", lambda command: None)
    monkeypatch.setattr(cdk, "deploy", lambda manifest_path, *args, **kwargs: deployed.append(manifest_path))
    code, stderr = deploy(bundle, "--verify-key", keys["ours"][1])
    assert code == 0, stderr
    assert f"signature verified against {keys['ours'][1]}" in stderr
    assert deployed == [bundle / "manifest.json"]


def test_build_refuses_a_missing_signing_key(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", str(tmp_path), "--sign-key", str(tmp_path / "nope.key")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --sign-key {tmp_path / 'nope.key'}: no such file"
