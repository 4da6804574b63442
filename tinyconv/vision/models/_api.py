"""Pretrained weights: torchvision's ``Weights`` / ``WeightsEnum`` and torch.hub's file cache.

A weights entry (``ResNet18_Weights.IMAGENET1K_V1``) names the file torchvision publishes, e.g.
``https://download.pytorch.org/models/resnet18-f37072fd.pth``. The eight hex digits after the
dash are the start of the file's SHA-256: that is how torch.hub checks a download, and so do we.

Where the files go (the first that is set)::

    $TINYCONV_HOME/hub/checkpoints/          tinyconv's own cache
    $TORCH_HOME/hub/checkpoints/             torch's cache (shared: a file torchvision already
    $XDG_CACHE_HOME/torch/hub/checkpoints/   downloaded is used as it is)
    ~/.cache/torch/hub/checkpoints/

A file found there is checked against its hash before every use. A missing file is downloaded
when there is a network: into a temporary file in the same folder, hashed, and renamed into
place only if the hash matches, so the cache never holds a partial or altered file. Without a
network the error names the URL and the path to put the file at.

Reading the file is ``tinyconv.load`` (PyTorch's zip format read without torch and without
running any pickled code).
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

# torch.hub's rule: the file name's "-<hex digits>." part is a prefix of its SHA-256.
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")


class WeightsError(RuntimeError):
    """Pretrained weights cannot be found, fetched, verified or read."""


def get_dir() -> str:
    """The folder above ``checkpoints/`` (torch.hub.get_dir's rule, with $TINYCONV_HOME first)."""
    if os.environ.get("TINYCONV_HOME"):
        return os.path.join(os.path.expanduser(os.environ["TINYCONV_HOME"]), "hub")
    if os.environ.get("TORCH_HOME"):
        return os.path.join(os.path.expanduser(os.environ["TORCH_HOME"]), "hub")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(cache), "torch", "hub")


def checkpoint_dir() -> str:
    return os.path.join(get_dir(), "checkpoints")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_hash_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix published in a file name (``resnet18-f37072fd.pth`` -> f37072fd)."""
    match = HASH_REGEX.search(file_name)
    return match.group(1) if match and match.group(1) else None


def verify_file(path: str, hash_prefix: str | None) -> None:
    """Raise WeightsError unless the file's SHA-256 starts with ``hash_prefix``."""
    if not hash_prefix:
        return
    found = sha256_of(path)
    if not found.startswith(hash_prefix):
        raise WeightsError(f"{path}: SHA-256 {found} does not start with {hash_prefix!r}, the "
                           f"hash published in the file name; the file is damaged, incomplete "
                           f"or not the published one. Delete it and download it again.")


def download_url_to_file(url: str, dst: str, hash_prefix: str | None = None,
                         progress: bool = True) -> None:
    """Fetch ``url`` into ``dst`` atomically: a temporary file beside ``dst``, verified, then
    renamed. Network failures raise WeightsError naming the URL and ``dst``."""
    folder = os.path.dirname(os.path.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dst) + ".", suffix=".partial",
                               dir=folder)
    try:
        try:
            with urllib.request.urlopen(url, timeout=30) as response, os.fdopen(fd, "wb") as f:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    done += len(block)
                    if progress:
                        shown = f"{done / 2**20:.1f}" + (f"/{total / 2**20:.1f}" if total else "")
                        print(f"\rdownloading {os.path.basename(dst)}: {shown} MB", end="",
                              file=sys.stderr, flush=True)
                f.flush()
                os.fsync(f.fileno())
            if progress:
                print(file=sys.stderr)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise WeightsError(
                f"cannot download {url} ({exc}). Without a network, fetch the file elsewhere "
                f"and put it at {dst} (the cache folder is $TINYCONV_HOME/hub/checkpoints, else "
                f"$TORCH_HOME/hub/checkpoints, else ~/.cache/torch/hub/checkpoints), or pass "
                f"the file's path instead of downloading.") from None
        verify_file(tmp, hash_prefix)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_state_dict_file(path: str) -> dict:
    """A ``state_dict`` (name -> array) from a .pth (or a tinyconv checkpoint) file.

    Accepts the file of a whole training checkpoint whose weights are under "model" or
    "state_dict" too. Every failure is a WeightsError naming the file.
    """
    import tinyconv

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file {path!r} does not exist")
    try:
        state = tinyconv.load(path)
    except (tinyconv.CheckpointError, ValueError, OSError, EOFError) as exc:
        raise WeightsError(f"cannot read weights from {path}: {exc}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} does not hold a state_dict (a dict of name -> tensor), "
                           f"found {type(state).__name__}")
    for key, value in state.items():
        if not hasattr(value, "shape"):
            raise WeightsError(f"{path}: entry {key!r} is a {type(value).__name__}, not a "
                               f"tensor; not a state_dict")
    return state


def load_state_dict_from_url(url: str, model_dir: str | None = None, map_location=None,
                             progress: bool = True, check_hash: bool = True,
                             file_name: str | None = None, weights_only: bool = True) -> dict:
    """torch.hub.load_state_dict_from_url: the cached file, downloaded first if missing.

    The hash check (the file name's SHA-256 prefix) runs on a fresh download and on a cached
    file alike, unless ``check_hash=False``.
    """
    folder = model_dir or checkpoint_dir()
    name = file_name or os.path.basename(urllib.parse.urlparse(url).path)
    path = os.path.join(folder, name)
    prefix = expected_hash_prefix(name) if check_hash else None
    if not os.path.exists(path):
        if progress:
            print(f"Downloading: {url!r} to {path}", file=sys.stderr)
        download_url_to_file(url, path, prefix, progress)
    else:
        verify_file(path, prefix)
    return load_state_dict_file(path)


class ImageClassification:
    """torchvision's ImageNet preprocessing preset (``weights.transforms()``).

    On channels-first images, one (C, H, W) or a batch (N, C, H, W), uint8 (0..255) or float
    (0..1), as torchvision's tensor path: the shorter side resized to ``resize_size``
    (bilinear, antialiased), the central ``crop_size`` square cut out, uint8 scaled to [0, 1],
    then ``(x - mean[c]) / std[c]``. Returns float32, a Tensor for a Tensor, else an array.
    """

    def __init__(self, *, crop_size, resize_size=256, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), interpolation="bilinear", antialias=True):
        self.crop_size, self.resize_size = [crop_size], [resize_size]
        self.mean, self.std = list(mean), list(std)
        self.interpolation, self.antialias = interpolation, antialias

    def __call__(self, img):
        import numpy as np

        from tinyconv.data import transforms as T
        from tinyconv.tensor import Tensor

        was_tensor = isinstance(img, Tensor)
        x = img.numpy() if was_tensor else np.asarray(img)
        if x.ndim not in (3, 4) or x.dtype.kind not in "uf":
            raise ValueError(f"ImageClassification expects channels-first images (C, H, W) or "
                             f"(N, C, H, W), uint8 or float, got {x.dtype} {x.shape}")
        x = T.Resize(self.resize_size[0], self.interpolation, self.antialias)(x)
        x = T.CenterCrop(self.crop_size[0])(x)
        x = x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.astype(
            np.float32, copy=False)
        x = T.Normalize(self.mean, self.std)(x)
        return Tensor(x) if was_tensor else x

    def __repr__(self):
        return (f"{type(self).__name__}(crop_size={self.crop_size}, resize_size="
                f"{self.resize_size}, mean={self.mean}, std={self.std}, interpolation="
                f"{self.interpolation}, antialias={self.antialias})")


@dataclass(eq=False)
class Weights:
    """One set of published weights: where to get them, how to prepare images, and facts."""

    url: str
    transforms: Callable[..., Any]
    meta: dict = field(default_factory=dict)


class WeightsEnum(enum.Enum):
    """Base of ``ResNet18_Weights`` and friends; each member's value is a :class:`Weights`."""

    @classmethod
    def verify(cls, obj):
        """None, a member, or a member's name ("IMAGENET1K_V1" / "ResNet18_Weights.DEFAULT")."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            name = obj.replace(cls.__name__ + ".", "")
            if name in cls.__members__:
                return cls.__members__[name]
            raise ValueError(f"weights: {obj!r} is not one of "
                             f"{', '.join(cls.__name__ + '.' + n for n in cls.__members__)}")
        raise TypeError(f"weights: expected a {cls.__name__} member (or its name) or None, got "
                        f"{type(obj).__name__} {obj!r}")

    def get_state_dict(self, progress: bool = True, check_hash: bool = True, **kwargs) -> dict:
        return load_state_dict_from_url(self.url, progress=progress, check_hash=check_hash,
                                        **kwargs)

    @property
    def url(self) -> str:
        return self.value.url

    @property
    def transforms(self):
        return self.value.transforms

    @property
    def meta(self) -> dict:
        return self.value.meta

    @property
    def file_name(self) -> str:
        return os.path.basename(self.url)

    def __repr__(self):
        return f"{type(self).__name__}.{self.name}"

