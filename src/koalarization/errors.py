"""One base for every error the package raises about its inputs (photos, data, checkpoints, weights, profiles,
surveys). The CLI turns a `KoalaError` into one clear line; anything else is a bug and keeps its traceback."""


class KoalaError(Exception):
    """An error about the user's input or environment, with a message that says what to do."""
