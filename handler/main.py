"""Lambda entry point: ``slimserve.handler.main.handler``.

Everything heavy happens here at import, i.e. in Lambda's init phase (and inside the SnapStart
snapshot): settings are read, the model is verified and loaded, the app is built. A model that
cannot be served raises ModelLoadError, so Lambda reports an init error with its message.
"""

from __future__ import annotations

from slimserve.handler.app import create_app
from slimserve.handler.gateway import make_lambda_handler
from slimserve.handler.model import fetch_from_s3, load_model
from slimserve.handler.observability import instrument, make_logger, make_metrics
from slimserve.handler.settings import Settings
from slimserve.handler.snapstart import register_hooks

settings = Settings.from_env()
logger = make_logger(settings.log_level)
model = load_model(
    settings.model_dir, intra_op_threads=settings.intra_op_threads, model_path=fetch_from_s3(settings)
)
app = create_app(model)
# Prime the session now (init is not billed on-demand and the snapshot keeps it under SnapStart).
app.service.warm_up()
register_hooks(app.service.warm_up)
asgi_handler = make_lambda_handler(app)
handler = instrument(asgi_handler, logger=logger, metrics=make_metrics(model.name))
