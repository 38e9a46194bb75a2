"""The environment variables the handler reads, named once.

The handler is the lowest room: infra/ (which sets them on the function) and build/ (which
emulates the function locally) import these names from here, so the three rooms cannot drift.
Explicit arguments beat the environment (``Settings.from_env(model_dir=...)``).
"""

ENV_MODEL_DIR = "SLIMSERVE_MODEL_DIR"  # folder with manifest.json + model (default <task root>/model)
ENV_THREADS = "SLIMSERVE_THREADS"  # onnxruntime intra-op threads (default: the CPUs Lambda gives, max 4)
ENV_LOG_LEVEL = "SLIMSERVE_LOG_LEVEL"
# package = "s3": where the model lives and the sha256 it must have; VERSION pins the object version.
ENV_MODEL_S3_BUCKET = "SLIMSERVE_MODEL_S3_BUCKET"
ENV_MODEL_S3_KEY = "SLIMSERVE_MODEL_S3_KEY"
ENV_MODEL_S3_SHA256 = "SLIMSERVE_MODEL_S3_SHA256"
ENV_MODEL_S3_VERSION = "SLIMSERVE_MODEL_S3_VERSION"
ENV_MODEL_S3_REQUIRED = (ENV_MODEL_S3_BUCKET, ENV_MODEL_S3_KEY, ENV_MODEL_S3_SHA256)
ENV_MODEL_S3_ALL = (*ENV_MODEL_S3_REQUIRED, ENV_MODEL_S3_VERSION)
