"""slimserve's Lambda handler: a small ASGI app wrapped by Mangum over one onnxruntime session.

Import ``slimserve.handler.main`` to load the model (Lambda's init phase); this package itself stays
import-free so tools can read ``__version__`` cheaply.
"""

__version__ = "0.1.0"
