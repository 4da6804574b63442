"""``torchvision.transforms`` for tinyconv: the same names, arguments and numbers.

Two kinds of input, as in torchvision
-------------------------------------
torchvision's transforms take either a PIL image or a tensor, and the two are laid out
differently. tinyconv has no PIL dependency, so a NumPy array stands in for the PIL image:

* an **image** is a NumPy array ``(H, W)`` (grey) or ``(H, W, C)`` (colour), usually uint8,
  exactly ``np.asarray(pil_image)``. The datasets return images, and a PIL image given to a
  transform is turned into one with ``np.asarray``. Transforms that torchvision applies to PIL
  images (crops, flips, pad, resize, rotation, grayscale) take and return images.
* a **tensor** is a tinyconv ``Tensor`` ``(C, H, W)``, or ``(..., C, H, W)`` with leading batch
  dimensions, as torchvision's tensor path. Transforms return a Tensor for a Tensor.

``ToTensor`` goes from the first kind to the second, as torchvision's: ``(H, W)`` or
``(H, W, C)`` uint8 -> float32 ``(C, H, W)`` divided by 255. ``Normalize`` takes tensors only.
So the classic CIFAR pipeline ``Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
ToTensor(), Normalize(mean, std)])`` works unchanged: the first two see ``(32, 32, 3)``
images. (``tinyconv.data.transforms.ToTensor`` differs: it reads a 3-D array as a batch of grey
images. That module's transforms are batch-first; these follow torchvision item by item.)

Numbers
-------
Tensors get the numbers of torchvision's tensor path. Images get PIL's numbers where they are
exact pixel moves (crop, flip, pad, nearest resize, ``Grayscale``'s integer luma); bilinear
``Resize`` of an image computes torchvision's tensor-path numbers on the uint8 values (PIL's
own fixed-point arithmetic differs by at most one grey level), and ``RandomRotation`` samples as
the tensor path for both kinds (the same pixels as PIL's, except where a source point lies
exactly half-way between two pixels, as at 30 degrees on an odd-sized image).

The fast batch path
-------------------
A ``DataLoader`` over a dataset of ``tinyconv.vision.datasets`` asks for whole batches
(``__getitems__``). When every transform of the pipeline is one of this module's (not a
``Lambda`` or a user function), the dataset runs it once on the whole uint8 batch instead of
once per image: each transform has a ``_batch(x, kind)`` method on ``(N, C, H, W)`` arrays
that does for every image what ``__call__`` does for one, random transforms drawing
independently per image (see ``apply_to_batch``). The results have the same distribution as
the item-by-item path; they are not the same random draws (the draws come in another order).
Otherwise the dataset applies the pipeline image by image and stacks the results.

Randomness comes from tinyconv's global generator, so ``tinyconv.manual_seed(s)`` makes the
random transforms reproducible. ``functional`` has the same operations as plain functions.

Where each transform lives: base.py (the two kinds of input, ``Compose``, ``Lambda``,
``InterpolationMode``, the batch path), pixels.py (``ToTensor``, ``ConvertImageDtype``,
``Normalize``, ``Grayscale``), geometry.py (resize, crops, pad, flips, rotation).
"""

from tinyconv.vision.transforms.base import Compose, InterpolationMode, Lambda

# the batch path (tinyconv's, used by tinyconv.vision.datasets; not torchvision's, not in __all__)
from tinyconv.vision.transforms.base import apply_to_batch as apply_to_batch
from tinyconv.vision.transforms.base import is_batchable as is_batchable
from tinyconv.vision.transforms.geometry import (
    CenterCrop,
    Pad,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)
from tinyconv.vision.transforms.pixels import ConvertImageDtype, Grayscale, Normalize, ToTensor

__all__ = [
    "CenterCrop", "Compose", "ConvertImageDtype", "Grayscale", "InterpolationMode", "Lambda",
    "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip", "RandomResizedCrop",
    "RandomRotation", "RandomVerticalFlip", "Resize", "ToTensor",
]

# functional's defaults name InterpolationMode, so it is imported once the names above exist.
from tinyconv.vision.transforms import functional  # noqa: E402, F401
