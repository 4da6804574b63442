"""``torchvision.transforms`` for tinyconv (see ``tinyconv.data.transforms``)."""

from tinyconv.data.transforms import *  # noqa: F401,F403
