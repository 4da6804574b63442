"""``tinyconv.utils.data`` mirrors ``torch.utils.data`` so that imports port unchanged."""

from tinyconv.utils import data  # noqa: F401
