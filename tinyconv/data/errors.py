"""Errors raised by tinyconv.data."""


class DataError(ValueError):
    """A data file is missing, corrupt, or does not match what was expected.

    Subclasses ValueError so that callers which already catch bad-input errors keep working.
    Messages name the file, what was expected and what was found.
    """
