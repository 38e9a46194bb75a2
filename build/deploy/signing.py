"""Signed bundles: OpenSSF model signing (``model-signing``) over what a deploy uses.

``slimserve build --sign-key KEY`` signs, with an elliptic-curve private key (PEM) and no
network, the files of ``dist/<name>/`` that reach AWS: ``manifest.json``, the model file, the
manifest's other ``files`` (e.g. ``tokenizer.json``) and ``lambda.zip`` (which holds them all
again, with the handler). The signature is a Sigstore bundle (DSSE envelope over an in-toto
statement of every file's sha256) written to ``model.sig`` beside them.

``slimserve deploy`` with a public key (``--verify-key`` or ``[signing] public_key``) checks that
signature before it synthesizes or uploads anything and refuses, in one line, a bundle that is
unsigned, signed by another key, or changed after signing (a signed file altered, missing, or
replaced). Other files of the folder (``report.md``, ``cdk.out/`` ...) are not signed and never
deployed. The handler still checks the model's sha256 at init, signed or not.

Sigstore's keyless signing (an OIDC identity and the public transparency log) is the online
alternative: ``model_signing sign sigstore`` on the same files gives a bundle that
``model_signing verify sigstore`` checks; slimserve itself uses keys, which work offline.
"""

from __future__ import annotations

import re
from pathlib import Path

from slimserve.build.errors import SignatureError
from slimserve.build.paths import SIGNATURE_FILE
from slimserve.handler.manifest import MANIFEST_FILE, Manifest

ZIP_FILE = "lambda.zip"


def signed_files(manifest: Manifest) -> list[str]:
    """The files of a build folder a signature covers, relative to it."""
    return sorted({MANIFEST_FILE, ZIP_FILE, manifest.model.file, *manifest.files})


def _hashing_config(folder: Path, covered: list[str]):  # -> model_signing.hashing.Config
    from model_signing import hashing

    # Everything else in the folder is left out, whatever appears there after signing.
    others = [entry.name for entry in folder.iterdir() if entry.name not in covered]
    return hashing.Config().use_file_serialization(hashing_algorithm="sha256").set_ignored_paths(
        paths=others, ignore_git_paths=True
    )


def sign_bundle(folder: Path, manifest: Manifest, private_key: Path) -> Path:
    """Sign the deployable files of ``folder`` with ``private_key``; returns the signature path."""
    from model_signing import signing

    if not private_key.is_file():
        raise SignatureError(f"signing key {private_key}: no such file")
    covered = signed_files(manifest)
    missing = [name for name in covered if not (folder / name).is_file()]
    if missing:
        raise SignatureError(f"cannot sign {folder}: {', '.join(missing)} missing")
    signature = folder / SIGNATURE_FILE
    signature.unlink(missing_ok=True)
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=private_key)
        config.set_hashing_config(_hashing_config(folder, covered)).sign(folder, signature)
    except (ValueError, TypeError, OSError) as exc:
        raise SignatureError(f"signing {folder} with {private_key} failed: {_reason(exc)}") from None
    return signature


def verify_bundle(folder: Path, manifest: Manifest, public_key: Path) -> None:
    """Raise SignatureError unless ``folder``'s signed files carry a valid signature by the
    holder of ``public_key``'s private key and are unchanged since."""
    from model_signing import verifying

    if not public_key.is_file():
        raise SignatureError(f"verification key {public_key}: no such file")
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise SignatureError(
            f"refusing to deploy {folder}: it is not signed (no {SIGNATURE_FILE}) and a public key "
            f"is configured ({public_key}); sign it with `slimserve build --sign-key <private key>`"
        )
    covered = signed_files(manifest)
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
        config.set_hashing_config(_hashing_config(folder, covered)).verify(folder, signature)
    except Exception as exc:  # model_signing raises ValueError, sigstore's errors, protobuf's...
        raise SignatureError(
            f"refusing to deploy {folder}: its signature does not verify against {public_key} "
            f"({_reason(exc)})"
        ) from None


def _reason(exc: Exception) -> str:
    """model_signing's message, with its file-by-file diff (reprs of digests) summarized."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if text.startswith("Signature mismatch"):
        changed = re.findall(r"Hash mismatch for \\*'([^'\\]+)", text)
        missing = re.findall(r"Missing files in model \\*'[^']*?\\*': ([^\"'\]]+)", text)
        parts = [f"changed since signing: {', '.join(changed)}"] if changed else []
        parts += [f"missing: {', '.join(missing)}"] if missing else []
        if parts:
            return "; ".join(parts)
    return text if len(text) <= 300 else text[:297] + "..."
