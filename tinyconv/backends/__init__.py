"""``tinyconv.backends``: the flags tutorials read or set on ``torch.backends``.

tinyconv runs on the CPU only: ``mps.is_available()`` and ``cudnn.is_available()`` are False;
setting ``cudnn.benchmark`` or ``cudnn.deterministic`` is accepted and changes nothing (tinyconv's
results are deterministic for a given thread count anyway).
"""

from tinyconv.backends import cudnn, mps  # noqa: F401
