"""Neural-network layers (``tinyconv.nn``), as ``torch.nn``."""

from tinyconv.nn import functional, init
from tinyconv.nn.fusion import fusion_enabled, set_fusion
from tinyconv.nn.modules import *  # noqa: F401,F403
from tinyconv.nn.modules import __all__ as _modules_all

__all__ = ["functional", "init", "fusion_enabled", "set_fusion"] + _modules_all
