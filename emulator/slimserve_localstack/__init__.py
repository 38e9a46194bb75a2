"""LocalStack plugins that let slimserve's stack run on the host, without Docker.

Loaded by LocalStack 4.14 (community core, Python 3.13) from ``scripts/aws-emulator``, never by
slimserve itself: this package imports ``localstack``, which is no dependency of slimserve, so
it lives outside the ``slimserve.*`` packages (and outside the wheel). The script puts this
folder and a shim of the checkout's ``slimserve`` package on LocalStack's ``PYTHONPATH`` and
registers ``../entry_points.txt`` as a dist-info:

- ``executor``: the Lambda runtime executor ``slimserve-host`` (``LAMBDA_RUNTIME_EXECUTOR``):
  every function runs in a host process through slimserve's local runner
  (``slimserve.build.local.function``: ``awslambdaric`` against its own Runtime API);
- ``custom_resource``: Lambda-backed ``Custom::*`` resources, which community LocalStack
  deploys as empty fallbacks (``package=s3`` needs CDK's BucketDeployment to really run);
- ``request_validation``: the REST API request validator picks the body model by the
  request's Content-Type, as API Gateway does (LocalStack always uses the JSON model).
"""
