"""``tinyconv.accelerator``: ``torch.accelerator``'s answers on a machine without one.

PyTorch's current quick-start picks its device with
``torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"``;
here ``is_available()`` is False, so that line picks the CPU.
"""


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def current_accelerator(check_available: bool = False):
    """None: tinyconv has no accelerator (torch also returns None when there is none)."""
    return None
