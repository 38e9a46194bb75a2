"""One typed error hierarchy for the handler, mapped to HTTP in exactly one place (app.py).

Every error a client can cause is a subclass with its HTTP status; the message is safe to
show (no stack traces, no internals) and becomes the body ``{"error": message}``.
"""

from __future__ import annotations

# An error message is one sentence: it may quote what the client sent (a name, a key, a value),
# but never all of it. Lambda refuses responses over 6 MB (the client would get a 502 and the
# execution environment would be thrown away), so an echo must never grow with the request.
ECHO_CHARS = 64
MAX_MESSAGE_CHARS = 1_000


def clip(text: object, limit: int = ECHO_CHARS) -> str:
    """``text`` as str, cut to ``limit`` characters with a marker saying how much was cut."""
    value = str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}...({len(value) - limit} more characters)"


class SlimserveError(Exception):
    """Base class: ``status_code`` is the HTTP status the app answers with."""

    status_code: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Extra response headers the status requires (e.g. Allow on 405).
        self.headers = headers or {}


class BadRequest(SlimserveError):
    """The request is malformed: JSON, tensor shape, datatype, encoding, non-finite values."""

    status_code = 400


class NotFound(SlimserveError):
    """Unknown model, version or route."""

    status_code = 404


class MethodNotAllowed(SlimserveError):
    status_code = 405


class PayloadTooLarge(SlimserveError):
    """The body, batch, tensor or text exceeds a configured limit."""

    status_code = 413


class UnsupportedMediaType(SlimserveError):
    status_code = 415


class Unprocessable(SlimserveError):
    """Well-formed JSON that does not match the Open Inference Protocol schema."""

    status_code = 422


class InferenceError(SlimserveError):
    """onnxruntime failed on an input that passed validation: a model problem, not a client one."""

    status_code = 500


class ModelLoadError(SlimserveError):
    """The model cannot be served (missing, corrupted, hash mismatch). Raised at import, so
    Lambda reports an init error instead of answering requests with a broken model."""

    status_code = 503
