"""Load-time checks every task adapter shares."""

from __future__ import annotations

from slimserve.handler.errors import ModelLoadError
from slimserve.handler.model import LoadedModel


def check_io_matches_session(model: LoadedModel, api_inputs: list[str]) -> None:
    session_inputs = [node.name for node in model.session.get_inputs()]
    if sorted(api_inputs) != sorted(session_inputs):
        raise ModelLoadError(f"manifest inputs {api_inputs} do not match the model's inputs {session_inputs}")
