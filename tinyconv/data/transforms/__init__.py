"""Batch image transforms on NumPy arrays, named after torchvision.transforms.

Unlike torchvision's per-image transforms, each transform here takes a whole batch and works
on it at once with array operations (no Python loop over images); a single image works too.
Shapes use N (batch), C (channels), H (height), W (width):

* ``ToTensor`` turns uint8 images, ``(N, H, W)``, ``(N, H, W, C)`` or one ``(H, W)``, into
  float32 ``(N, C, H, W)`` (or ``(C, H, W)``) scaled to [0, 1]. NOTE: a 3-D input is a batch of
  grayscale images here, whereas torchvision reads a 3-D ndarray as one ``(H, W, C)`` image.
* The others take float (or uint8) ``(N, C, H, W)`` or ``(C, H, W)``, so put them after
  ``ToTensor``. The random ones draw independently for every image in a batch.

The functions (``pad``, ``crop``, ``center_crop``, ``resize``, ``rotate``, ``hflip``,
``vflip``, ``rgb_to_grayscale``...) work on the last axes ``(..., C, H, W)`` of any array and
are also the arithmetic behind ``tinyconv.vision.transforms``, which wraps them with
torchvision's item-by-item conventions.

Random transforms take ``generator``: an int seed, a ``numpy.random.Generator``, or None for
the global generator (``tinyconv.random.default_generator`` if available, see ``_rng``).

The classes are in transforms.py, the functions in functional.py.
"""

from tinyconv.data.transforms.functional import (
    PADDING_MODES,
    center_crop,
    crop,
    hflip,
    nearest_indices,
    output_size,
    pad,
    parse_padding,
    resize,
    resize_weights,
    rgb_to_grayscale,
    rgb_to_grayscale_pil,
    rotate,
    vflip,
)
from tinyconv.data.transforms.transforms import (
    CenterCrop,
    Compose,
    Grayscale,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    ToTensor,
)

__all__ = [
    # the classes
    "CenterCrop", "Compose", "Grayscale", "Normalize", "RandomCrop", "RandomHorizontalFlip",
    "RandomRotation", "RandomVerticalFlip", "Resize", "ToTensor",
    # the functional forms
    "PADDING_MODES", "center_crop", "crop", "hflip", "nearest_indices", "output_size", "pad",
    "parse_padding", "resize", "resize_weights", "rgb_to_grayscale", "rgb_to_grayscale_pil",
    "rotate", "vflip",
]
