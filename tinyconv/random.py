"""The global random number generator (``tinyconv.manual_seed``).

All randomness in tinyconv (initialisation, dropout masks, ``randn``/``rand``, shuffling when no
generator is given) draws from :data:`default_generator`, a NumPy ``Generator``. Seeding it makes
a run reproducible; it does not reproduce torch's random numbers (different algorithms).
"""

from __future__ import annotations

import numpy as np

# Like torch, start from a fixed seed so that an unseeded script is still deterministic.
_INITIAL_SEED = 67280421310721
default_generator: np.random.Generator = np.random.default_rng(_INITIAL_SEED)
_seed = _INITIAL_SEED


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator; returns it (torch returns its Generator too)."""
    global _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed(): seed must be an int, got {type(seed).__name__}")
    _seed = int(seed)
    # Reseed in place, so that modules holding a reference to the generator see the new seed.
    default_generator.bit_generator.state = np.random.PCG64(_seed).state
    return default_generator


def initial_seed() -> int:
    return _seed


def get_rng_state() -> dict:
    """The generator's full state, a plain dict (JSON- and checkpoint-friendly)."""
    return default_generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    default_generator.bit_generator.state = state
