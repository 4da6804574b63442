"""``tinyconv.cuda``: the answers ``torch.cuda`` gives on a machine without a GPU.

tinyconv runs on the CPU only, so ``is_available()`` is False and ``device_count()`` is 0; the
seeding and cache calls that tutorials make unconditionally do nothing, as in PyTorch without
CUDA. Calls that need a GPU raise one clear error (see ``tinyconv._devices.require_cpu``).
"""

from tinyconv._devices import require_cpu


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def manual_seed(seed) -> None:
    """No GPU generator to seed: does nothing, as ``torch.cuda.manual_seed`` without CUDA."""


def manual_seed_all(seed) -> None:
    """No GPU generator to seed: does nothing, as ``torch.cuda.manual_seed_all`` without CUDA."""


def empty_cache() -> None:
    """No GPU memory to release: does nothing, as ``torch.cuda.empty_cache`` without CUDA."""


def _no_gpu(name):
    def fn(*args, **kwargs):
        require_cpu("cuda", f"tinyconv.cuda.{name}()")
    fn.__name__ = name
    fn.__doc__ = "Needs a GPU: raises, since tinyconv runs on the CPU only."
    return fn


current_device = _no_gpu("current_device")
get_device_name = _no_gpu("get_device_name")
get_device_properties = _no_gpu("get_device_properties")
set_device = _no_gpu("set_device")
synchronize = _no_gpu("synchronize")
memory_allocated = _no_gpu("memory_allocated")
max_memory_allocated = _no_gpu("max_memory_allocated")
