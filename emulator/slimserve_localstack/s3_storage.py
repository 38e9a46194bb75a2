"""LocalStack's S3 object data in the emulator's run folder, not in a fixed /tmp folder.

LocalStack 4.14 keeps S3 object bytes under ``/tmp/localstack-s3-storage``
(``services/s3/provider.py``: ``DEFAULT_S3_TMP_DIR``, read when the S3 provider is created on
first use), whatever TMPDIR says: it would outlive ``scripts/aws-emulator stop`` and be shared by
every instance on the machine. This hook points it into ``$TMPDIR`` (the run folder, which stop
removes) before any S3 request creates the provider.
"""

from __future__ import annotations

import os
import tempfile

from localstack.runtime import hooks


@hooks.on_infra_start()
def s3_objects_in_the_run_folder() -> None:
    from localstack.services.s3 import provider

    provider.DEFAULT_S3_TMP_DIR = os.path.join(tempfile.gettempdir(), "localstack-s3-storage")
