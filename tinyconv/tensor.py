"""The Tensor: a NumPy array plus what autograd needs (``requires_grad``, ``grad``, ``grad_fn``).

Every differentiable method here is a thin call of a Function in ``tinyconv/ops``; the array
itself is ``tensor._data`` (``tensor.numpy()`` outside the library). Names, signatures and
defaults follow torch's, so that code written for torch runs with ``tinyconv`` in its place.
"""

from __future__ import annotations

import builtins as _b  # the torch dtype names below shadow int, float and bool
import weakref
from collections import namedtuple

import numpy as np

from tinyconv import autograd
from tinyconv._devices import device, require_cpu
from tinyconv.ops import elementwise as E
from tinyconv.tensor_inplace import TensorInplace
from tinyconv.tensor_math import TensorMath
from tinyconv.tensor_shape import TensorShape

# dtypes are NumPy dtypes; the names are torch's.
float32 = float = np.dtype(np.float32)  # noqa: A001 - torch's name
float64 = double = np.dtype(np.float64)
float16 = half = np.dtype(np.float16)
int64 = long = np.dtype(np.int64)
int32 = int = np.dtype(np.int32)  # noqa: A001 - torch's name
int16 = short = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)  # noqa: A001 - torch's name


default_float = float32

MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


class Size(tuple):
    """Shape of a tensor: a tuple that prints like torch's ``torch.Size([2, 3])``."""

    def __repr__(self):
        return f"tinyconv.Size({list(self)})"

    def numel(self):
        return _b.int(np.prod(self, dtype=np.int64))


def _to_dtype(dtype):
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a tinyconv/NumPy dtype such as tinyconv.float32, "
                        f"got {dtype!r}") from None


def _as_array(data, dtype=None):
    """Convert Python data to an array with torch's default dtypes (float32, int64, bool)."""
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, np.ndarray):
        arr = data
    elif hasattr(data, "__array__") and not isinstance(data, (list, tuple)):
        arr = np.asarray(data)  # e.g. a torch tensor: keeps its dtype
    else:
        arr = np.asarray(data)
        if arr.dtype == np.float64:
            arr = arr.astype(default_float)  # Python floats -> float32, as torch.tensor does
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in "fb":
            raise TypeError(f"tensor(): could not convert data of type {type(data).__name__} "
                            f"(numpy dtype {arr.dtype}) to a numeric tensor")
    if dtype is not None:
        arr = arr.astype(_to_dtype(dtype), copy=False)
    return arr


class Tensor(TensorMath, TensorShape, TensorInplace):
    """An n-dimensional array with reverse-mode automatic differentiation.

    This file holds its data, autograd state, properties and conversions; the operators,
    elementwise functions and reductions are in tensor_math.py, shape and indexing in
    tensor_shape.py, the in-place methods in tensor_inplace.py (mixins it inherits).
    """

    __array_priority__ = 1000  # numpy scalar * Tensor -> Tensor.__rmul__

    def __init__(self, data, dtype=None, requires_grad=False):
        self._data = _as_array(data, dtype)
        if self._data.ndim and not self._data.flags.writeable:
            self._data = self._data.copy()
        self.grad = None
        self.grad_fn = None
        self._version_counter = autograd.VersionCounter()
        self._view_base = self._view_fn = self._hooks = None
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, arr):
        """Wrap a result array without conversion or copy (used by Function.apply)."""
        t = cls.__new__(cls)
        t._data = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
        t.grad = None
        t.grad_fn = None
        t._requires_grad = False
        t._version_counter = autograd.VersionCounter()
        t._view_base = t._view_fn = t._hooks = None
        return t

    # ----- autograd state ---------------------------------------------------------------------

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self._data.dtype.kind not in "fc":
            raise RuntimeError(f"only tensors of floating point dtype can require gradients, "
                               f"got dtype {self._data.dtype}")
        if not value and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; "
                               "use .detach() to get a tensor outside the graph")
        self._requires_grad = _b.bool(value)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor during backward, as torch does."""
        if self.grad_fn is not None:
            self.grad_fn.retained = weakref.ref(self)
        elif not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")

    @property
    def retains_grad(self):
        return self.grad_fn is not None and self.grad_fn.retained is not None \
            and self.grad_fn.retained() is self

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has seen (shared with its views)."""
        return self._version_counter.value

    def register_hook(self, hook):
        """Call ``hook(grad)`` whenever the gradient of this tensor is computed; a hook may
        return a tensor to use in place of ``grad``. Returns a handle whose ``remove()`` undoes
        the registration (``torch.Tensor.register_hook``)."""
        from tinyconv.utils.hooks import RemovableHandle

        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if not callable(hook):
            raise TypeError(f"register_hook(): hook must be callable, got {type(hook).__name__}")
        if self.grad_fn is not None:
            if self.grad_fn.hooks is None:
                self.grad_fn.hooks = {}
            hooks = self.grad_fn.hooks
        else:
            if self._hooks is None:
                self._hooks = {}
            hooks = self._hooks
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def _accumulate(self, g, owned=False):
        """Add ``g`` to ``.grad``; ``owned``: g is a fresh array that may be kept as it is."""
        if self.grad is None:
            if owned and g.dtype == self._data.dtype:
                self.grad = Tensor._wrap(g)
            else:
                self.grad = Tensor._wrap(np.array(g, dtype=self._data.dtype, copy=True))
        else:
            self.grad._data = self.grad._data + g

    def backward(self, gradient=None, retain_graph=False):
        """Compute d(self)/d(leaf) for every leaf that requires grad; add it to ``leaf.grad``."""
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn: backward() needs a tensor computed from parameters or "
                               "from tensors created with requires_grad=True")
        g = autograd.engine.initial_gradient(self, gradient, "the tensor", "gradient")
        autograd.backward(self, g, retain_graph=retain_graph)

    def detach(self):
        """The same data, outside the graph (no copy; in-place changes of either show in both,
        and count in both's version counter, as in torch)."""
        t = Tensor._wrap(self._data)
        t._version_counter = self._version_counter
        return t

    def detach_(self):
        if self._view_base is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn = None
        self._requires_grad = False
        return self

    @property
    def data(self):
        """A tensor sharing this one's array, without grad tracking (torch's ``.data``)."""
        return Tensor._wrap(self._data)

    @data.setter
    def data(self, value):
        self._data = _as_array(value)

    # ----- basic properties ----------------------------------------------------------------

    @property
    def shape(self):
        return Size(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        return device("cpu")

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def is_cuda(self):
        return False

    def dim(self):
        return self._data.ndim

    def size(self, dim=None):
        if dim is None:
            return self.shape
        return self._data.shape[self._axis(dim)]

    def numel(self):
        return _b.int(self._data.size)

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"only one element tensors can be converted to Python scalars, "
                             f"got a tensor with {self._data.size} elements")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def numpy(self):
        """The underlying array (shared, not copied)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return _b.bool(self._data.reshape(()))

    def __float__(self):
        return _b.float(self.item())

    def __int__(self):
        return _b.int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return _b.int(self.item())

    __hash__ = object.__hash__

    def __format__(self, format_spec):
        """A 0-d tensor formats as its Python number (``f"{acc:.4f}"``), as torch; any other
        tensor accepts only the empty format, as ``object`` does."""
        if self._data.ndim == 0:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self._data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype=tinyconv.{self._data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def _axis(self, dim):
        nd = _b.max(self._data.ndim, 1)
        if not -nd <= dim < nd:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-nd}, {nd - 1}], but got {dim})")
        return dim % nd

    # ----- dtype and device ----------------------------------------------------------------

    def to(self, *args, dtype=None, **kwargs):
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; devices other than cpu fail."""
        for a in args:
            if isinstance(a, (str, device)) or isinstance(a, _b.int) and not isinstance(a, _b.bool):
                require_cpu(a)
            elif isinstance(a, Tensor):
                dtype = a.dtype
            else:
                dtype = a
        require_cpu(kwargs.get("device"))
        if dtype is None or np.dtype(dtype) == self.dtype:
            return self
        return E.Cast.apply(self, _to_dtype(dtype))

    def type(self, dtype=None):
        if dtype is None:
            return f"tinyconv.{self.dtype}"
        return self.to(dtype)

    def cpu(self):
        return self

    def cuda(self, device=None, non_blocking=False):  # noqa: A002
        require_cpu("cuda" if device is None else device)

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def half(self):
        return self.to(float16)

    def long(self):
        return self.to(int64)

    def int(self):
        return self.to(int32)

    def bool(self):
        return self.to(np.bool_)

    def type_as(self, other):
        return self.to(other.dtype)
