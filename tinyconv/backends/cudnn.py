"""``tinyconv.backends.cudnn``: the flags exist so that setting them runs; they change nothing."""

enabled = True
benchmark = False
deterministic = False


def is_available() -> bool:
    return False


def version():
    return None
