"""``RemovableHandle``: what ``register_hook`` and the module hook methods return."""

import itertools

_ids = itertools.count()


class RemovableHandle:
    """``handle.remove()`` takes the hook out of the dict it was registered in; also usable as
    a context manager (the hook is removed on exit), as ``torch.utils.hooks.RemovableHandle``."""

    def __init__(self, hooks_dict, *extra_dicts):
        self.id = next(_ids)
        self._dicts = (hooks_dict,) + extra_dicts

    def remove(self):
        for d in self._dicts:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
