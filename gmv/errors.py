"""The one exception type for bad input: commands print its message as one line and exit 2."""


class GmvError(ValueError):
    """A user-facing error: the message says what was wrong and how to fix it."""
