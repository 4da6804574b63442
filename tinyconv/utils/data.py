"""``from tinyconv.utils.data import DataLoader`` works as in torch: see ``tinyconv.data``."""

from tinyconv.data import *  # noqa: F401,F403
