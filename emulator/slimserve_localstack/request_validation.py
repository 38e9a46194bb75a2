"""REST API request validation by the request's Content-Type, as API Gateway does it.

API Gateway validates a body against the method's request model *for the request's content
type*; "If no matching content type is found, request validation is not performed. To use the
same model regardless of the content type, set the content type for your data model to
$default." (API Gateway developer guide, "Request validation for REST APIs"). A request without
a Content-Type is taken as ``application/json``.

LocalStack 4.14 (``apigateway/next_gen/execute_api/handlers/method_request.py``,
``MethodRequestHandler._is_body_valid``) instead always takes the ``application/json`` model
(else ``$default``, else ``Empty``) whatever the Content-Type, then ``json.loads`` the raw body
and catches only ``JSONDecodeError``. So a binary tensor request (``application/octet-stream``)
to a method whose model is mapped to ``application/json`` fails with an uncaught
``UnicodeDecodeError``: HTTP 500 "Error in apigateway invocation: 'utf-8' codec can't decode
byte ...". A binary body with no model at all would be "Invalid request body" (400).

This hook wraps that check with API Gateway's model selection, then lets LocalStack's own
validation run on the chosen model; a body that is not UTF-8 under a JSON model is invalid
(400) instead of a 500. ``AWS_EMULATOR_STOCK_VALIDATOR=1`` leaves LocalStack's behaviour as it
is (to show the difference).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)
_DEFAULT_CONTENT_TYPE = "application/json"


def select_model(request_models: dict[str, str] | None, content_type: str | None) -> str | None:
    """The model API Gateway validates a body against; None: the body is not validated."""
    media_type = (content_type or _DEFAULT_CONTENT_TYPE).split(";", 1)[0].strip().lower()
    models = {key.lower(): value for key, value in (request_models or {}).items()}
    return models.get(media_type) or models.get("$default")


@hooks.on_infra_start()
def validate_by_content_type() -> None:
    if os.environ.get("AWS_EMULATOR_STOCK_VALIDATOR") == "1":
        LOG.warning("slimserve: LocalStack's stock REST request validator left in place")
        return
    from localstack.services.apigateway.next_gen.execute_api.handlers.method_request import (
        MethodRequestHandler,
    )

    stock = MethodRequestHandler._is_body_valid

    def is_body_valid(method: Any, rest_api: Any, request: Any) -> bool:
        headers = request.get("headers") or {}
        model = select_model(method.get("requestModels"), headers.get("Content-Type"))
        if model is None:
            return True
        # LocalStack's check on exactly the chosen model (it reads the application/json key).
        try:
            return stock({**method, "requestModels": {_DEFAULT_CONTENT_TYPE: model}}, rest_api, request)
        except UnicodeDecodeError:
            return False  # not JSON text, under a JSON schema model: invalid, not a crash

    MethodRequestHandler._is_body_valid = staticmethod(is_body_valid)
    LOG.info("slimserve: REST request validation selects the model by Content-Type")
