"""The Tensor: a NumPy array plus what autograd needs (``requires_grad``, ``grad``, ``grad_fn``).

Every differentiable method here is a thin call of a Function in ``tinyconv/ops``; the array
itself is ``tensor._data`` (``tensor.numpy()`` outside the library). Names, signatures and
defaults follow torch's, so that code written for torch runs with ``tinyconv`` in its place.
"""

from __future__ import annotations

import numbers
import operator
import weakref
from collections import namedtuple

import builtins as _b  # the torch dtype names below shadow int, float and bool

import numpy as np

from tinyconv import autograd
from tinyconv._devices import device, require_cpu
from tinyconv.ops import elementwise as E
from tinyconv.ops import inplace as INP
from tinyconv.ops import matmul as MM
from tinyconv.ops import reduce as R
from tinyconv.ops import shape as S
from tinyconv.ops import trig as TRIG

# dtypes are NumPy dtypes; the names are torch's.
float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
float16 = half = np.dtype(np.float16)
int64 = long = np.dtype(np.int64)
int32 = int = np.dtype(np.int32)
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


def _operand(x):
    """A Tensor as is, a Python or NumPy scalar as a Python number, anything else as a Tensor."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.generic):
        x = x.item()  # torch treats NumPy scalars as Python numbers (x * np.float64(2) too)
    if isinstance(x, numbers.Number):
        return x  # Python scalars are "weak" in NumPy 2: float32 + 1.5 stays float32
    return Tensor(np.asarray(x))


def _float_dtype(x):
    """The float dtype of an operand (a Python float counts as the default), or None."""
    if isinstance(x, Tensor):
        return x._data.dtype if x._data.dtype.kind == "f" else None
    return default_float if isinstance(x, _b.float) else None


def _promoted(a, b, divide=False):
    """Both operands of a binary op, with torch's type promotion where NumPy's differs.

    torch computes an integer (or bool) tensor met by a float in that float's dtype (float32
    for a Python float) and divides integers in float32; NumPy would give float64 in all these
    cases (e.g. ``int64 tensor * 1.5``, ``int64 / int64``).
    """
    a, b = _operand(a), _operand(b)
    fa, fb = _float_dtype(a), _float_dtype(b)
    if divide and fa is None and fb is None:
        fa = fb = default_float
    if isinstance(a, Tensor) and a._data.dtype.kind in "biu" and fb is not None:
        a = a.to(fb)
    if isinstance(b, Tensor) and b._data.dtype.kind in "biu" and fa is not None:
        b = b.to(fa)
    return a, b


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation."""

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
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; "
                                   f"this tensor has shape {tuple(self.shape)}: pass gradient=")
            g = np.ones(self._data.shape, dtype=self._data.dtype)
        else:
            g = np.asarray(gradient._data if isinstance(gradient, Tensor) else gradient,
                           dtype=self._data.dtype)
            if g.shape != self._data.shape:
                raise RuntimeError(f"backward(): gradient has shape {g.shape}, expected the "
                                   f"tensor's shape {self._data.shape}")
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

    # ----- arithmetic ------------------------------------------------------------------------

    def __add__(self, other):
        return E.Add.apply(*_promoted(self, other))

    def __radd__(self, other):  # other + self
        return E.Add.apply(*_promoted(other, self))

    def __sub__(self, other):
        return E.Sub.apply(*_promoted(self, other))

    def __rsub__(self, other):  # other - self
        return E.Sub.apply(*_promoted(other, self))

    def __mul__(self, other):
        return E.Mul.apply(*_promoted(self, other))

    def __rmul__(self, other):  # other * self
        return E.Mul.apply(*_promoted(other, self))

    def __truediv__(self, other):
        return E.Div.apply(*_promoted(self, other, divide=True))

    def __rtruediv__(self, other):  # other / self
        return E.Div.apply(*_promoted(other, self, divide=True))

    def __pow__(self, other):
        return E.Pow.apply(*_promoted(self, other))

    def __rpow__(self, other):  # other ** self
        return E.Pow.apply(*_promoted(other, self))

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return MM.MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):  # other @ self
        return MM.MatMul.apply(_operand(other), self)

    def __abs__(self):
        return E.Abs.apply(self)

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    pow = __pow__
    neg = __neg__
    matmul = __matmul__
    mm = __matmul__
    abs = __abs__

    # NOTE: without these, Python runs ``w -= lr * w.grad`` as ``w = w - lr * w.grad``: a new
    # tensor, leaving the parameter itself unchanged. Like torch they change the tensor in place.
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def exp(self):
        return E.Exp.apply(self)

    def sin(self):
        return TRIG.Sin.apply(self)

    def cos(self):
        return TRIG.Cos.apply(self)

    def log(self):
        return E.Log.apply(self)

    def sqrt(self):
        return E.Sqrt.apply(self)

    def relu(self):
        return E.ReLU.apply(self)

    def sigmoid(self):
        return E.Sigmoid.apply(self)

    def tanh(self):
        return E.Tanh.apply(self)

    def softmax(self, dim):
        from tinyconv.nn.functional import softmax
        return softmax(self, dim)

    def log_softmax(self, dim):
        from tinyconv.nn.functional import log_softmax
        return log_softmax(self, dim)

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's names
        out = self
        if min is not None:
            out = E.Maximum.apply(out, Tensor(np.asarray(min, dtype=self.dtype)))
        if max is not None:
            out = -E.Maximum.apply(-out, Tensor(np.asarray(-max, dtype=self.dtype)))
        return out

    # ----- comparisons (no gradient) -------------------------------------------------------

    def _compare(self, other, op):
        b = other._data if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(op(self._data, b)))

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def equal(self, other):
        return self.shape == other.shape and _b.bool(np.array_equal(self._data, other._data))

    def allclose(self, other, rtol=1e-05, atol=1e-08):
        return _b.bool(np.allclose(self._data, other._data, rtol=rtol, atol=atol))

    def __invert__(self):
        return Tensor._wrap(np.invert(self._data))

    def __and__(self, other):
        return self._compare(other, np.logical_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or)

    # ----- reductions ------------------------------------------------------------------------

    def _dims(self, dim):
        if dim is None:
            return None
        dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
        return tuple(sorted(self._axis(d) for d in dims))

    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if x._data.dtype.kind in "bui" and x._data.dtype != np.int64:
            x = x.to(int64)  # torch sums booleans and small ints into int64
        return R.Sum.apply(x, x._dims(dim), keepdim)

    def mean(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if x._data.dtype.kind not in "fc":
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be "
                               f"either a floating point or complex dtype. Got: {x.dtype}")
        return R.Mean.apply(x, x._dims(dim), keepdim)

    def max(self, dim=None, keepdim=False):
        """``x.max()``: the largest element; ``x.max(dim)``: (values, indices) along ``dim``.

        ``x.max(other_tensor)`` is the elementwise maximum, as in torch.
        """
        if isinstance(dim, Tensor):
            return E.Maximum.apply(self, dim)
        if dim is None:
            return R.MaxAll.apply(self)
        axis = self._axis(dim)
        values = R.MaxDim.apply(self, axis, keepdim)
        return MaxResult(values, self.argmax(axis, keepdim))

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return -E.Maximum.apply(-self, -dim)
        if dim is None:
            return -R.MaxAll.apply(-self)
        axis = self._axis(dim)
        values = R.MaxDim.apply(self, axis, keepdim, sign=-1)
        return MinResult(values, self.argmin(axis, keepdim))

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmax(self._data), dtype=np.int64))
        return Tensor._wrap(np.argmax(self._data, axis=self._axis(dim), keepdims=keepdim)
                            .astype(np.int64, copy=False))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmin(self._data), dtype=np.int64))
        return Tensor._wrap(np.argmin(self._data, axis=self._axis(dim), keepdims=keepdim)
                            .astype(np.int64, copy=False))

    # ----- shape -----------------------------------------------------------------------------

    def _shape_arg(self, shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(_b.int(s) for s in shape)
        known = np.prod([s for s in shape if s != -1], dtype=np.int64)
        if shape.count(-1) > 1:
            raise RuntimeError("only one dimension can be inferred (-1)")
        ok = (self._data.size == known if -1 not in shape
              else known > 0 and self._data.size % known == 0)
        if not ok:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size "
                               f"{self._data.size}")
        return shape

    def reshape(self, *shape):
        return S.Reshape.apply(self, self._shape_arg(shape))

    def view(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, numbers.Integral)):
            return self.to(shape[0])  # view(dtype)
        return S.Reshape.apply(self, self._shape_arg(shape))

    def view_as(self, other):
        return self.view(other.shape)

    reshape_as = view_as

    def diag(self, diagonal=0):
        """``torch.diag``: the ``diagonal``-th diagonal (k > 0 above the main one) of a 2-D
        tensor as 1-D, or a 1-D tensor of length n as the k-th diagonal of an (n + |k|)-square
        2-D one, zeros elsewhere.

        Built from differentiable pieces, so the gradient comes for free: a matrix's diagonal
        is an advanced index ``self[rows, cols]``; a vector v becomes ``v_row * eye(m, k)``,
        where entry (r, c) of the k-th diagonal holds v[r] when k >= 0 and v[c] when k < 0.
        """
        if self.ndim not in (1, 2):
            raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")
        k = operator.index(diagonal)
        if self.ndim == 2:
            n_rows, n_cols = self.shape
            length = _b.max(0, _b.min(n_rows + _b.min(k, 0), n_cols - _b.max(k, 0)))
            i = np.arange(length)
            return self[(i - _b.min(k, 0), i + _b.max(k, 0))]
        m = self.shape[0] + _b.abs(k)
        padded = S.Cat.apply(0, self, Tensor._wrap(np.zeros(_b.abs(k), self.dtype)))
        along = padded.unsqueeze(1) if k >= 0 else padded.unsqueeze(0)
        return along * Tensor._wrap(np.eye(m, k=k, dtype=self.dtype))

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = self._axis(start_dim), self._axis(end_dim)
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = self.shape
        return self.reshape(shape[:s] + (-1,) + shape[e + 1:]) if s < e else self

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        dims = tuple(self._axis(d) for d in dims)
        if sorted(dims) != list(range(self.ndim)):
            raise RuntimeError(f"permute(): dims {dims} are not a permutation of the "
                               f"{self.ndim} dimensions")
        return S.Permute.apply(self, dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        a, b = self._axis(dim0), self._axis(dim1)
        dims[a], dims[b] = dims[b], dims[a]
        return S.Permute.apply(self, tuple(dims))

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self.ndim}D")
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self):  # noqa: N802 - torch's name
        return S.Permute.apply(self, tuple(reversed(range(self.ndim))))

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axis = self._axis(dim)
        if self.shape[axis] != 1:
            return self
        return self.reshape(self.shape[:axis] + self.shape[axis + 1:])

    def unsqueeze(self, dim):
        axis = dim % (self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        lead = len(shape) - self.ndim
        full = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        return S.Expand.apply(self, full)

    def expand_as(self, other):
        return self.expand(other.shape)

    def contiguous(self):
        return self if self._data.flags.c_contiguous else S.Contiguous.apply(self)

    def is_contiguous(self):
        return _b.bool(self._data.flags.c_contiguous)

    def __getitem__(self, index):
        index = _unwrap_index(index)
        return S.GetItem.apply(self, index)

    def __setitem__(self, index, value):
        index = _unwrap_index(index)
        if isinstance(value, Tensor) and self._tracks_inplace(value):
            self._apply_inplace(lambda old: INP.SetItem.apply(old, value, index), "setitem")
            return
        value = value._data if isinstance(value, Tensor) else value
        if self._tracks_inplace():
            self._apply_inplace(lambda old: INP.SetItem.apply(old, value, index), "setitem")
            return
        self._check_writeable("setitem")
        self._data[index] = value
        self._version_counter.value += 1

    # ----- in-place operations ---------------------------------------------------------------
    #
    # Every in-place op goes through _apply_inplace. Outside a graph (the optimizers' updates,
    # initialisation, anything under no_grad) it writes into the array and bumps the version
    # counter. Inside a graph it is recorded as PyTorch records it: the new value is computed
    # by the differentiable out-of-place op from a snapshot of the old value, written into this
    # tensor's memory, and this tensor's grad_fn becomes that op's node. Backward then gives
    # the right gradients, and any node that saved the overwritten memory for its backward
    # refuses to run (see tinyconv/autograd/version.py).

    def _tracks_inplace(self, *others):
        """Whether an in-place op on self (with ``others``) must be recorded in the graph."""
        if not autograd.is_grad_enabled():
            return False
        return self.requires_grad or _b.any(isinstance(o, Tensor) and o.requires_grad
                                            for o in others)

    def _check_writeable(self, op):
        if not self._data.flags.writeable:
            raise RuntimeError(f"{op}: unsupported operation: this tensor's memory is read-only "
                               f"(an expand()ed tensor, where more than one element refers to a "
                               f"single memory location); clone() it first")

    def _apply_inplace(self, compute, op, others=(), fast=None):
        """Change this tensor in place to ``compute(old)`` (a function of the old value built
        from differentiable ops). ``fast(array)``, if given, writes the new value directly when
        no graph is recorded."""
        self._check_writeable(op)
        if not self._tracks_inplace(*others):
            if fast is not None:
                fast(self._data)
            else:
                with autograd.no_grad():
                    new = compute(self)._data
                np.copyto(self._data, new, casting="same_kind")
            self._version_counter.value += 1
            return self
        base = self._view_base
        if self.is_leaf and self.requires_grad:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               f"in-place operation; wrap it in tinyconv.no_grad() (as "
                               f"optimizers and initialisers do) or use the out-of-place form")
        if base is not None and base.is_leaf and base.requires_grad:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being "
                               f"used in an in-place operation; clone() it first")
        new = compute(self._snapshot())
        if new.dtype != self.dtype:
            if not np.can_cast(new.dtype, self.dtype, casting="same_kind"):
                raise RuntimeError(f"{op}: result type {new.dtype} can't be cast to the desired "
                                   f"output type {self.dtype}")
            new = new.to(self.dtype)
        if base is None:
            np.copyto(self._data, new._data)
            self._rebase(new.grad_fn)
        else:
            # Write through the base: its new value is the old one with the viewed part
            # replaced; this tensor (a view of the base's memory) sees the change, and its
            # graph becomes "a view of the new base".
            new_base = INP.SetView.apply(base._snapshot(), new, self._view_fn)
            np.copyto(base._data, new_base._data)
            base._rebase(new_base.grad_fn)
            self._rebase(INP.ViewOf.apply(base, self._view_fn).grad_fn)
        self._version_counter.value += 1
        return self

    def _snapshot(self):
        """A copy of the current value that stands for it in the graph (same grad_fn)."""
        t = Tensor._wrap(self._data.copy())
        t.grad_fn, t._requires_grad = self.grad_fn, self._requires_grad
        return t

    def _rebase(self, node):
        """Make ``node`` this tensor's grad_fn after an in-place change."""
        old = self.grad_fn
        self.grad_fn = node
        self._requires_grad = node is not None or self._requires_grad
        if node is not None and old is not None and old.retained is not None \
                and old.retained() is self:
            old.retained, node.retained = None, weakref.ref(self)

    def _binary_inplace(self, other, op, ufunc, out_of_place):
        other_arr = other._data if isinstance(other, Tensor) else other

        def fast(arr):
            ufunc(arr, other_arr, out=arr, casting="same_kind")

        return self._apply_inplace(lambda old: out_of_place(old, other), op, (other,), fast)

    def add_(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        return self._binary_inplace(other, "add_", np.add, lambda a, b: a + b)

    def sub_(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        return self._binary_inplace(other, "sub_", np.subtract, lambda a, b: a - b)

    def mul_(self, other):
        return self._binary_inplace(other, "mul_", np.multiply, lambda a, b: a * b)

    def div_(self, other):
        return self._binary_inplace(other, "div_", np.true_divide, lambda a, b: a / b)

    def pow_(self, exponent):
        return self._binary_inplace(exponent, "pow_", np.power, lambda a, b: a ** b)

    def neg_(self):
        return self._apply_inplace(lambda old: -old, "neg_")

    def abs_(self):
        return self._apply_inplace(lambda old: old.abs(), "abs_")

    def exp_(self):
        return self._apply_inplace(lambda old: old.exp(), "exp_")

    def log_(self):
        return self._apply_inplace(lambda old: old.log(), "log_")

    def sqrt_(self):
        return self._apply_inplace(lambda old: old.sqrt(), "sqrt_")

    def relu_(self):
        return self._apply_inplace(lambda old: old.relu(), "relu_")

    def sigmoid_(self):
        return self._apply_inplace(lambda old: old.sigmoid(), "sigmoid_")

    def tanh_(self):
        return self._apply_inplace(lambda old: old.tanh(), "tanh_")

    def clamp_(self, min=None, max=None):  # noqa: A002 - torch's names
        return self._apply_inplace(lambda old: old.clamp(min, max), "clamp_")

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        mask = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
        mask = np.broadcast_to(mask.astype(np.bool_), self._data.shape)
        self[mask] = value
        return self

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        if isinstance(value, Tensor):
            return self.copy_(value.expand(self.shape) if value.ndim == 0 else value)

        def fast(arr):
            arr[...] = value

        return self._apply_inplace(lambda old: INP.Fill.apply(old, value), "fill_", (), fast)

    def copy_(self, src, non_blocking=False):
        if isinstance(src, Tensor):
            src_t = src
        else:
            src_t = Tensor._wrap(np.asarray(src))
        try:
            np.broadcast_shapes(src_t._data.shape, self._data.shape)
        except ValueError:
            raise RuntimeError(f"copy_(): the source of shape {tuple(src_t.shape)} cannot be "
                               f"broadcast to this tensor's shape {tuple(self.shape)}") from None

        def fast(arr):
            arr[...] = src_t._data  # copy_ converts between dtypes, as torch's does

        return self._apply_inplace(lambda old: INP.CopyFrom.apply(old, src_t), "copy_", (src_t,),
                                   fast)

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from tinyconv import random
        rng = generator or random.default_generator
        return self.copy_(rng.uniform(a, b, self._data.shape))

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from tinyconv import random
        rng = generator or random.default_generator
        return self.copy_(rng.normal(mean, std, self._data.shape))

    def clone(self):
        return E.Mul.apply(self, 1) if self.requires_grad else Tensor._wrap(self._data.copy())


def _unwrap_index(index):
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index
