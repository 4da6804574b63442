"""What importing tinyconv does to the process before anything else, in this order.

1. ``OPENBLAS_THREAD_TIMEOUT=4``, unless numpy is already imported or the variable is set
   (see the note below). It must come first: OpenBLAS reads it once, when numpy loads it.
2. ``tinyconv._threads`` picks numba's threading layer (OpenMP with sleeping threads where it
   can, else numba's workqueue). It imports numba, and with it numpy, so it comes after 1; and
   it must run before numba starts its threads, at the first parallel kernel (see
   tinyconv/_threads.py).
3. ``tinyconv._malloc`` tells glibc's malloc (``mallopt``) to keep freed memory in the
   process, so that the large buffers a training step frees are reused by the next one instead
   of being faulted in again (see tinyconv/_malloc.py; ``TINYCONV_MALLOC_TUNING=0`` turns it
   off). It applies to the whole process; no order constraint.

tinyconv/__init__.py imports this module before any other, so that 1 happens before numpy.
"""

import os
import sys

# NOTE: OpenBLAS (behind numpy's matrix products) keeps its worker threads spinning after each
# product (for 2**28 cycles by default), and they take the cores from numba's threads in the
# kernels that run next: a FashionCNN training step took ~41 ms instead of ~37 ms on 2 cores.
# OPENBLAS_THREAD_TIMEOUT=4 lets them sleep almost at once. OpenBLAS reads it when it loads, so
# it takes effect only if tinyconv is imported before numpy (the examples and benchmarks set it
# themselves); a value already in the environment wins.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from tinyconv import _threads  # noqa: E402,F401 - 2. (after 1: it imports numba and numpy)

# isort: split
from tinyconv import _malloc  # noqa: E402,F401 - 3.
