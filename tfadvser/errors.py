"""The one exception type users see: a message naming the file and the problem."""


class TfadvserError(Exception):
    """An error caused by the user's input (a file, a folder, an option), not by a bug.

    The command line prints its message as a single `error: ...` line and exits non-zero
    instead of showing a traceback.
    """
