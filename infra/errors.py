"""The one error the CDK app raises for bad input (options, or options against the manifest).

Its own module so that options.py and sizing.py can both raise it without importing each other.
"""


class OptionsError(ValueError):
    """The stack options are invalid, alone or together with the manifest."""
