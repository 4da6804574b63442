"""Random-generator plumbing shared by DataLoader and the random transforms.

Everything random in tinyconv.data takes ``generator``, which may be:

* a ``numpy.random.Generator``: used as is (its state advances),
* an ``int`` seed: a private ``numpy.random.default_rng(seed)``, made once,
* ``None``: the global generator, looked up at every draw so that re-seeding the global
  generator later (e.g. ``tinyconv.manual_seed``) takes effect, as in PyTorch.

The global generator is ``tinyconv.random.default_generator`` (reseeded in place by
``tinyconv.manual_seed``).
"""

import numpy as np

from tinyconv import random


def global_generator():
    """tinyconv's global NumPy generator (``tinyconv.manual_seed`` reseeds it)."""
    return random.default_generator


def make_generator(generator):
    """Turn a ``generator`` argument into a Generator, or None meaning "use the global one"."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"generator must be None, an int seed or a numpy.random.Generator, "
        f"got {type(generator).__name__}"
    )


def resolve(generator):
    """Return the Generator to draw from now: ``generator`` itself, or the global one."""
    return global_generator() if generator is None else generator
