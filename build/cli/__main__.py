"""``python -m slimserve.build.cli``: the ``slimserve`` command without its console script."""

from slimserve.build.cli.main import main

main()
