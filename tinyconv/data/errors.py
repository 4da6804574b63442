"""Errors raised by tinyconv.data."""


class DataError(ValueError):
    """A data file is missing, corrupt, or does not match what was expected.

    Subclasses ValueError so that callers which already catch bad-input errors keep working.
    Messages name the file, what was expected and what was found.
    """


class DatasetNotFoundError(DataError, RuntimeError):
    """A dataset's files are missing (and could not be downloaded).

    Also a RuntimeError, the class torchvision raises for "Dataset not found", so code written
    for torchvision that catches it keeps working.
    """
