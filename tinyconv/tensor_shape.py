"""Shape and indexing methods of :class:`~tinyconv.tensor.Tensor` (the ``TensorShape`` mixin):
view, reshape, permute, squeeze, indexing... each a differentiable op of tinyconv/ops/shape.py.
"""

from __future__ import annotations

import builtins as _b  # as in tensor.py, where int, float and bool are dtypes
import math
import numbers
import operator

import numpy as np

# Tensor is built from this mixin in tinyconv/tensor.py, so the class (and the dtypes) are
# looked up on that module when a method runs; importing the names here would be circular.
from tinyconv import tensor
from tinyconv.ops import inplace as INP
from tinyconv.ops import shape as S


class TensorShape:
    """Tensor's shape and indexing methods."""

    # ----- shape -----------------------------------------------------------------------------

    def _shape_arg(self, shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(_b.int(s) for s in shape)
        known = math.prod([s for s in shape if s != -1])  # (np.prod: ~6 us a call)
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
        padded = S.Cat.apply(0, self, tensor.Tensor._wrap(np.zeros(_b.abs(k), self.dtype)))
        along = padded.unsqueeze(1) if k >= 0 else padded.unsqueeze(0)
        return along * tensor.Tensor._wrap(np.eye(m, k=k, dtype=self.dtype))

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
        if isinstance(value, tensor.Tensor) and self._tracks_inplace(value):
            self._apply_inplace(lambda old: INP.SetItem.apply(old, value, index), "setitem")
            return
        value = value._data if isinstance(value, tensor.Tensor) else value
        if self._tracks_inplace():
            self._apply_inplace(lambda old: INP.SetItem.apply(old, value, index), "setitem")
            return
        self._check_writeable("setitem")
        self._data[index] = value
        self._version_counter.value += 1


def _unwrap_index(index):
    if isinstance(index, tensor.Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, tensor.Tensor) else i for i in index)
    return index
