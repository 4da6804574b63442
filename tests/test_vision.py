"""tinyconv.vision against torchvision: transforms (tensor and PIL paths, item by item and on
the datasets' batch path), datasets on the real MNIST / Fashion-MNIST and on CIFAR-format files
written here, make_grid / save_image, and the messages for bad arguments."""

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import tinyconv
import tinyconv.vision as tcv
from tinyconv.data import DataLoader
from tinyconv.vision import datasets, utils
from tinyconv.vision import transforms as T

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
PIL_Image = pytest.importorskip("PIL.Image")
tvt = torchvision.transforms
tvf = torchvision.transforms.functional

REAL_ROOT = os.environ.get("TINYCONV_DATA", "")
rng = np.random.default_rng(0)


def tc(x):
    """ndarray -> tinyconv Tensor."""
    return tinyconv.tensor(x)


def th(x):
    """ndarray -> torch tensor."""
    return torch.from_numpy(np.ascontiguousarray(x))


def grey_image(h=12, w=10):
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


def rgb_image(h=12, w=10):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def float_chw(c=3, h=12, w=10):
    return rng.random((c, h, w), dtype=np.float32)


def pil(image):
    return PIL_Image.fromarray(image)


# ---- the package ---------------------------------------------------------------------------


def test_torchvision_shaped_imports():
    from tinyconv.vision import datasets as d  # noqa: F401
    from tinyconv.vision import models
    from tinyconv.vision import transforms as t
    from tinyconv.vision import utils as u

    assert tcv.datasets.MNIST is d.MNIST and tcv.transforms.ToTensor is t.ToTensor
    assert callable(u.make_grid) and callable(u.save_image) and models is tcv.models


def test_import_does_not_import_torch():
    code = "import sys, tinyconv.vision; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- ToTensor and Normalize ----------------------------------------------------------------


@pytest.mark.parametrize("make", [grey_image, rgb_image])
def test_to_tensor_matches_torchvision(make):
    image = make()
    ours = T.ToTensor()(image)
    assert isinstance(ours, tinyconv.Tensor) and ours.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(ours), tvt.ToTensor()(image).numpy())
    # A PIL image is read through np.asarray: the same numbers.
    np.testing.assert_array_equal(np.asarray(T.ToTensor()(pil(image))),
                                  tvt.ToTensor()(pil(image)).numpy())


def test_to_tensor_keeps_non_uint8_values():
    image = rng.random((5, 4, 2))  # float64 (H, W, C)
    ours = np.asarray(T.ToTensor()(image))
    theirs = tvt.ToTensor()(image).numpy()
    assert ours.dtype == theirs.dtype == np.float64
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("mean, std", [((0.5,), (0.5,)), ([0.1307], [0.3081]),
                                       ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])
def test_normalize_matches_torchvision(mean, std):
    x = float_chw(c=len(mean))
    ours = T.Normalize(mean, std)(tc(x))
    np.testing.assert_array_equal(np.asarray(ours), tvt.Normalize(mean, std)(th(x)).numpy())
    batch = rng.random((4, len(mean), 5, 6), dtype=np.float32)  # leading dims, as torch's
    np.testing.assert_array_equal(np.asarray(T.Normalize(mean, std)(tc(batch))),
                                  tvt.Normalize(mean, std)(th(batch)).numpy())


def test_normalize_inplace():
    x = tc(float_chw())
    expected = tvt.Normalize((0.5,) * 3, (0.2,) * 3)(th(np.asarray(x).copy())).numpy()
    version = x._version
    out = T.Normalize([0.5] * 3, [0.2] * 3, inplace=True)(x)
    assert out is x and x._version > version  # autograd sees the in-place write
    np.testing.assert_array_equal(np.asarray(x), expected)
    y = tc(float_chw())
    before = np.asarray(y).copy()
    T.Normalize([0.5] * 3, [0.2] * 3)(y)
    np.testing.assert_array_equal(np.asarray(y), before)


def test_compose_to_tensor_normalize_matches_torchvision():
    image = rgb_image()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ours = T.Compose([T.ToTensor(), T.Normalize(mean, std)])(image)
    theirs = tvt.Compose([tvt.ToTensor(), tvt.Normalize(mean, std)])(pil(image))
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


# ---- geometry: tensors and images ----------------------------------------------------------


def check_both_paths(ours, theirs, image, atol=0):
    """``ours`` on an image and a Tensor vs ``theirs`` on a PIL image and a torch tensor."""
    got = ours(image)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got.astype(np.int64), np.asarray(theirs(pil(image))), atol=atol,
                               rtol=0)
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    x = chw.astype(np.float32) / 255
    got = ours(tc(x))
    assert isinstance(got, tinyconv.Tensor)
    np.testing.assert_array_equal(np.asarray(got), theirs(th(x)).numpy())


@pytest.mark.parametrize("make", [grey_image, rgb_image])
@pytest.mark.parametrize("size", [6, (5, 7), [9], 12, (13, 11)])
def test_center_crop_matches_torchvision(make, size):
    check_both_paths(T.CenterCrop(size), tvt.CenterCrop(size), make(10, 9))


@pytest.mark.parametrize("padding_mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("padding", [2, (1, 3), [0, 1, 2, 3]])
def test_pad_matches_torchvision(padding, padding_mode):
    check_both_paths(T.Pad(padding, fill=7, padding_mode=padding_mode),
                     tvt.Pad(padding, fill=7, padding_mode=padding_mode), rgb_image())


@pytest.mark.parametrize("flip, theirs", [(T.RandomHorizontalFlip, tvf.hflip),
                                          (T.RandomVerticalFlip, tvf.vflip)])
def test_flips_match_torchvision(flip, theirs):
    check_both_paths(flip(p=1.0), theirs, rgb_image())
    check_both_paths(flip(p=0.0), lambda img: img, grey_image())


@pytest.mark.parametrize("num_output_channels", [1, 3])
def test_grayscale_matches_torchvision(num_output_channels):
    # Images: PIL's integer formula; tensors: torchvision's float formula (truncated for uint8).
    ours, theirs = T.Grayscale(num_output_channels), tvt.Grayscale(num_output_channels)
    check_both_paths(ours, theirs, rgb_image())
    check_both_paths(ours, theirs, grey_image())
    u8 = rgb_image().transpose(2, 0, 1)
    np.testing.assert_array_equal(np.asarray(ours(tc(u8))), theirs(th(u8)).numpy())


@pytest.mark.parametrize("in_size, size", [((28, 28), 14), ((28, 28), (20, 33)),
                                           ((32, 30), (64, 17)), ((7, 9), 3), ((10, 14), [25]),
                                           ((9, 9), 9)])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_bilinear_matches_torchvision_tensor_path(in_size, size, antialias):
    x = rng.random((3, *in_size), dtype=np.float32)
    ours = np.asarray(T.Resize(size, antialias=antialias)(tc(x)))
    theirs = tvt.Resize(size, antialias=antialias)(th(x)).numpy()
    assert ours.shape == theirs.shape
    # float32 sums in another order: a few ulps.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=3e-6)
    u8 = rng.integers(0, 256, (2, 3, *in_size), dtype=np.uint8)
    ours = np.asarray(T.Resize(size, antialias=antialias)(tc(u8)))
    theirs = tvt.Resize(size, antialias=antialias)(th(u8)).numpy()
    assert ours.dtype == np.uint8
    # Rounded to uint8 after the float32 computation: a value within a few ulps of .5 may
    # round the other way.
    assert np.abs(ours.astype(int) - theirs).max() <= 1
    assert (ours != theirs).mean() < 0.01


@pytest.mark.parametrize("size", [14, (20, 33), (64, 17)])
def test_resize_images_within_one_level_of_pil(size):
    image = rgb_image(32, 30)
    ours = T.Resize(size)(image)
    theirs = np.asarray(tvt.Resize(size)(pil(image)))
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - theirs).max() <= 1


@pytest.mark.parametrize("size", [14, (20, 33), (64, 17), (7, 5)])
@pytest.mark.parametrize("mode", ["NEAREST", "NEAREST_EXACT"])
def test_resize_nearest_matches_torchvision(size, mode):
    x = float_chw(h=32, w=30)
    ours = T.Resize(size, interpolation=getattr(T.InterpolationMode, mode))(tc(x))
    theirs = tvt.Resize(size, interpolation=getattr(tvt.InterpolationMode, mode))(th(x))
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())
    if mode == "NEAREST":  # PIL's NEAREST on images
        image = rgb_image(32, 30)
        np.testing.assert_array_equal(
            T.Resize(size, interpolation=T.InterpolationMode.NEAREST)(image),
            np.asarray(tvt.Resize(size, interpolation=tvt.InterpolationMode.NEAREST)(pil(image))))


def test_resize_int_keeps_aspect_and_max_size():
    x = tc(float_chw(h=20, w=40))
    assert tuple(T.Resize(10)(x).shape) == tuple(tvt.Resize(10)(th(np.asarray(x))).shape)
    ours = T.Resize(10, max_size=15)(x)
    theirs = tvt.Resize(10, max_size=15)(th(np.asarray(x)))
    assert tuple(ours.shape) == tuple(theirs.shape) == (3, 7, 15)


def test_random_crop_is_a_crop_and_reproducible():
    image = rgb_image(32, 32)
    crop = T.RandomCrop(32, padding=4)
    tinyconv.manual_seed(3)
    first = crop(image)
    tinyconv.manual_seed(3)
    np.testing.assert_array_equal(crop(image), first)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    seen = set()
    for _ in range(40):
        out = crop(image)
        assert out.shape == (32, 32, 3)
        hits = [(i, j) for i in range(9) for j in range(9)
                if np.array_equal(padded[i:i + 32, j:j + 32], out)]
        assert hits
        seen.update(hits)
    assert len(seen) > 10  # offsets vary


def test_random_crop_pad_if_needed_pads_as_torchvision():
    # torchvision pads the missing amount on BOTH sides of a short axis, so the crop that
    # follows still has room to move: the result is some window of tvf.pad(img, [dw, dh]).
    image = rgb_image(5, 7)
    padded = np.asarray(tvf.pad(pil(image), [11 - 7, 9 - 5], fill=3))
    for _ in range(20):
        out = T.RandomCrop((9, 11), pad_if_needed=True, fill=3)(image)
        assert out.shape == (9, 11, 3)
        assert any(np.array_equal(padded[i:i + 9, j:j + 11], out)
                   for i in range(padded.shape[0] - 8) for j in range(padded.shape[1] - 10))


@pytest.mark.parametrize("angle", [0.0, 30.0, -45.0, 90.0, 17.3, 150.0])
@pytest.mark.parametrize("h, w", [(11, 13), (28, 28), (8, 5)])
def test_rotation_matches_torchvision_tensor_path(angle, h, w):
    x = float_chw(h=h, w=w)
    ours = T.RandomRotation((angle, angle), fill=0.25)(tc(x))
    theirs = tvf.rotate(th(x), angle, fill=[0.25])
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


@pytest.mark.parametrize("angle", [10.0, 45.0, -17.3, 90.0, 30.0])
@pytest.mark.parametrize("make", [grey_image, rgb_image])
def test_rotation_of_images_matches_pil(angle, make):
    # Exact on even sizes; on odd ones, PIL and torchvision's tensor path (ours) may pick
    # different pixels where a source point lies exactly half-way (e.g. 30 degrees).
    image = make(28, 32)
    np.testing.assert_array_equal(T.RandomRotation((angle, angle))(image),
                                  np.asarray(tvf.rotate(pil(image), angle)))


@pytest.mark.parametrize("size", [8, (6, 10)])
def test_random_resized_crop_is_torchvision_resized_crop_of_its_window(size):
    x = float_chw(h=20, w=24)
    crop = T.RandomResizedCrop(size, scale=(0.2, 0.9))
    for seed in range(5):
        tinyconv.manual_seed(seed)
        top, left, h, w = crop.window(20, 24)
        assert 0 <= top and top + h <= 20 and 0 <= left and left + w <= 24
        assert 0.2 * 480 * 0.8 < h * w < 0.9 * 480 * 1.2  # rounding of h and w aside
        tinyconv.manual_seed(seed)
        ours = crop(tc(x))
        theirs = tvf.resized_crop(th(x), top, left, h, w, list(crop.size), antialias=True)
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=0, atol=3e-6)


def test_random_resized_crop_falls_back_to_a_central_window():
    crop = T.RandomResizedCrop(4, scale=(5.0, 6.0))  # no window of 5x the area fits
    assert crop.window(10, 40) == (0, 13, 10, 13)  # widest ratio 4/3: w = round(10 * 4/3)
    assert crop.window(10, 12) == (0, 0, 10, 12)


def test_two_dimensional_tensors_stay_two_dimensional():
    x = rng.random((6, 7), dtype=np.float32)
    for ours, theirs in [(T.CenterCrop(4), tvt.CenterCrop(4)), (T.Pad(1), tvt.Pad(1)),
                         (T.RandomHorizontalFlip(1.0), tvt.RandomHorizontalFlip(1.0))]:
        got, expected = np.asarray(ours(tc(x))), theirs(th(x)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=3e-6)


def test_random_transforms_follow_tinyconv_manual_seed():
    pipeline = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(),
                          T.RandomRotation(20), T.ToTensor()])
    image = rgb_image(8, 8)
    tinyconv.manual_seed(0)
    a = [np.asarray(pipeline(image)) for _ in range(5)]
    tinyconv.manual_seed(0)
    b = [np.asarray(pipeline(image)) for _ in range(5)]
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a[0], other) for other in a[1:])


def test_convert_image_dtype_matches_torchvision():
    u8 = rgb_image().transpose(2, 0, 1)
    np.testing.assert_array_equal(np.asarray(T.ConvertImageDtype(tinyconv.float32)(tc(u8))),
                                  tvt.ConvertImageDtype(torch.float32)(th(u8)).numpy())
    x = float_chw()
    np.testing.assert_array_equal(np.asarray(T.ConvertImageDtype(tinyconv.uint8)(tc(x))),
                                  tvt.ConvertImageDtype(torch.uint8)(th(x)).numpy())


def test_lambda():
    assert T.Lambda(lambda img: img.shape)(grey_image(3, 4)) == (3, 4)


# ---- transforms.functional ----------------------------------------------------------------


def test_functional_matches_torchvision():
    from tinyconv.vision.transforms import functional as F

    x, image = float_chw(h=11, w=13), rgb_image(11, 13)
    cases = [
        (lambda m: m.hflip, ()), (lambda m: m.vflip, ()),
        (lambda m: m.crop, (2, 3, 5, 6)), (lambda m: m.crop, (-2, 9, 6, 7)),  # partly outside
        (lambda m: m.center_crop, ([7, 5],)), (lambda m: m.pad, ([1, 2], 3, "edge")),
        (lambda m: m.rotate, (33.0,)), (lambda m: m.rgb_to_grayscale, (3,)),
        (lambda m: m.resized_crop, (1, 2, 8, 9, [5, 6])),
    ]
    for pick, args in cases:
        np.testing.assert_allclose(np.asarray(pick(F)(tc(x), *args)),
                                   pick(tvf)(th(x), *args).numpy(), rtol=0, atol=3e-6)
    for pick, args in cases[:6]:
        np.testing.assert_array_equal(pick(F)(image, *args),
                                      np.asarray(pick(tvf)(pil(image), *args)))
    np.testing.assert_array_equal(np.asarray(F.to_tensor(image)), tvf.to_tensor(image).numpy())
    np.testing.assert_array_equal(np.asarray(F.normalize(tc(x), [0.2] * 3, [0.5] * 3)),
                                  tvf.normalize(th(x), [0.2] * 3, [0.5] * 3).numpy())
    assert F.get_dimensions(image) == tvf.get_dimensions(pil(image)) == [3, 11, 13]
    assert F.get_dimensions(tc(x)) == tvf.get_dimensions(th(x))
    with pytest.raises(ValueError, match=r"rotate|RandomRotation: expand=True is not supported"):
        F.rotate(tc(x), 10.0, expand=True)


# ---- the batch path ------------------------------------------------------------------------


DETERMINISTIC = [
    T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]),
    T.Compose([T.Pad(2, padding_mode="reflect"), T.CenterCrop(10), T.Resize(16), T.ToTensor()]),
    T.Compose([T.Resize((5, 7), interpolation=T.InterpolationMode.NEAREST), T.Grayscale(3)]),
    T.Compose([T.ToTensor(), T.Resize(20), T.Grayscale(), T.Normalize([0.1], [0.3])]),
    T.Compose([T.RandomHorizontalFlip(1.0), T.RandomVerticalFlip(1.0), T.ToTensor()]),
    T.CenterCrop(6),
    T.Compose([T.ToTensor(), T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0))]),
]


@pytest.mark.parametrize("pipeline", DETERMINISTIC)
@pytest.mark.parametrize("make", [grey_image, rgb_image])
def test_batch_path_equals_item_by_item(pipeline, make):
    images = np.stack([make(12, 12) for _ in range(5)])
    assert T.is_batchable(pipeline)
    batch = T.apply_to_batch(pipeline, images)
    items = np.stack([np.asarray(pipeline(image)) for image in images])
    assert batch.shape == items.shape and batch.dtype == items.dtype
    np.testing.assert_array_equal(batch, items)


def test_batch_path_draws_per_image():
    images = np.stack([rgb_image(16, 16)] * 64)
    for transform in (T.RandomHorizontalFlip(), T.RandomCrop(16, padding=3),
                      T.RandomRotation(30), T.RandomResizedCrop(8)):
        out = T.apply_to_batch(transform, images)
        distinct = {out[i].tobytes() for i in range(len(out))}
        assert len(distinct) > 1, transform
    flips = T.apply_to_batch(T.RandomHorizontalFlip(), images)
    flipped = [np.array_equal(f, images[0][:, ::-1]) for f in flips]
    assert 10 < sum(flipped) < 54  # p = 0.5 per image
    # Each randomly cropped image is a window of the padded image.
    padded = np.pad(images[0], ((3, 3), (3, 3), (0, 0)))
    for out in T.apply_to_batch(T.RandomCrop(16, padding=3), images[:8]):
        assert any(np.array_equal(padded[i:i + 16, j:j + 16], out)
                   for i in range(7) for j in range(7))


def test_lambda_and_foreign_transforms_are_not_batched():
    assert not T.is_batchable(T.Compose([T.ToTensor(), T.Lambda(lambda x: x)]))
    assert not T.is_batchable(lambda x: x)

    class Inverted(T.ToTensor):  # a user's subclass may change __call__: item by item
        def __call__(self, pic):
            return super().__call__(255 - pic)

    assert not T.is_batchable(T.Compose([Inverted()]))


# ---- make_grid and save_image --------------------------------------------------------------


GRID_SHAPES = [(5, 3, 7, 9), (1, 1, 4, 4), (3, 1, 6, 5), (6, 6), (1, 8, 8), (3, 8, 8),
               (10, 3, 4, 4), (4, 4, 5, 5)]
GRID_ARGS = [{}, {"nrow": 3, "padding": 1, "pad_value": 0.5}, {"normalize": True},
             {"normalize": True, "scale_each": True}, {"normalize": True, "value_range": (-1, 1)},
             {"nrow": 20, "padding": 0}]


@pytest.mark.parametrize("shape", GRID_SHAPES)
@pytest.mark.parametrize("kwargs", GRID_ARGS)
def test_make_grid_matches_torchvision(shape, kwargs):
    x = rng.standard_normal(shape).astype(np.float32)
    ours = utils.make_grid(tc(x), **kwargs)
    theirs = torchvision.utils.make_grid(th(x), **kwargs)
    assert isinstance(ours, tinyconv.Tensor)
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())
    assert np.array_equal(x, np.asarray(tc(x)))  # input untouched


def test_make_grid_of_a_list():
    images = [tc(float_chw(h=4, w=5)) for _ in range(3)]
    theirs = torchvision.utils.make_grid([th(np.asarray(i)) for i in images], nrow=2)
    np.testing.assert_array_equal(np.asarray(utils.make_grid(images, nrow=2)), theirs.numpy())


@pytest.mark.parametrize("shape", [(5, 3, 7, 9), (3, 1, 6, 5), (6, 6), (2, 4, 5, 5)])
@pytest.mark.parametrize("kwargs", [{}, {"normalize": True, "nrow": 2}])
def test_save_image_pixels_match_torchvision(tmp_path, shape, kwargs):
    x = (rng.standard_normal(shape) * 0.6 + 0.5).astype(np.float32)
    ours_path, theirs_path = tmp_path / "ours.png", tmp_path / "theirs.png"
    utils.save_image(tc(x), ours_path, **kwargs)
    torchvision.utils.save_image(th(x), theirs_path, **kwargs)
    with PIL_Image.open(ours_path) as ours, PIL_Image.open(theirs_path) as theirs:
        assert ours.mode == theirs.mode
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    buffer = io.BytesIO()
    utils.save_image(tc(x), buffer, format="png", **kwargs)
    assert buffer.getvalue() == ours_path.read_bytes()


def test_save_image_refuses_other_formats(tmp_path):
    with pytest.raises(ValueError, match=r"PNG only.*'\.jpg'"):
        utils.save_image(tc(float_chw()), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"format='jpeg' is not supported"):
        utils.save_image(tc(float_chw()), io.BytesIO(), format="jpeg")
    assert list(tmp_path.iterdir()) == []


# ---- datasets: real MNIST / Fashion-MNIST --------------------------------------------------


def have_real(name):
    raw = os.path.join(REAL_ROOT, name, "raw")
    return all(os.path.exists(os.path.join(raw, f"t10k-{kind}-ubyte.gz"))
               for kind in ("images-idx3", "labels-idx1"))


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    """The real test splits, uncompressed as torchvision wants them, in a temporary root."""
    if not (have_real("MNIST") and have_real("FashionMNIST")):
        pytest.skip("real MNIST and Fashion-MNIST (TINYCONV_DATA) needed")
    root = tmp_path_factory.mktemp("tv")
    for name in ("MNIST", "FashionMNIST"):
        raw = root / name / "raw"
        raw.mkdir(parents=True)
        for kind in ("images-idx3", "labels-idx1"):
            with open(os.path.join(REAL_ROOT, name, "raw", f"t10k-{kind}-ubyte.gz"), "rb") as f:
                (raw / f"t10k-{kind}-ubyte").write_bytes(gzip.decompress(f.read()))
            # torchvision checks that the training files exist even for the test split.
            (raw / f"train-{kind}-ubyte").write_bytes(b"")
    return str(root)


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_real_items_and_attributes_match_torchvision(real_root, name):
    ours = getattr(datasets, name)(real_root, train=False)
    theirs = getattr(torchvision.datasets, name)(real_root, train=False)
    assert len(ours) == len(theirs) == 10000
    assert isinstance(ours.data, tinyconv.Tensor) and ours.data.dtype == np.uint8
    assert isinstance(ours.targets, tinyconv.Tensor) and ours.targets.dtype == np.int64
    np.testing.assert_array_equal(np.asarray(ours.data), theirs.data.numpy())
    np.testing.assert_array_equal(np.asarray(ours.targets), theirs.targets.numpy())
    assert ours.classes == theirs.classes and ours.class_to_idx == theirs.class_to_idx
    assert ours.raw_folder == theirs.raw_folder
    for i in (0, 1, 4242, 9999):
        image, label = ours[i]
        their_image, their_label = theirs[i]
        assert image.dtype == np.uint8 and image.shape == (28, 28)
        np.testing.assert_array_equal(image, np.asarray(their_image))
        assert type(label) is int and label == their_label


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_real_transformed_items_and_loader_match_torchvision(real_root, name):
    mean, std = (0.1307,), (0.3081,)
    ours = getattr(datasets, name)(real_root, train=False,
                                   transform=T.Compose([T.ToTensor(), T.Normalize(mean, std)]),
                                   target_transform=lambda y: y + 100)
    theirs = getattr(torchvision.datasets, name)(
        real_root, train=False, transform=tvt.Compose([tvt.ToTensor(), tvt.Normalize(mean, std)]),
        target_transform=lambda y: y + 100)
    for i in (3, 777):
        image, label = ours[i]
        assert isinstance(image, tinyconv.Tensor) and tuple(image.shape) == (1, 28, 28)
        np.testing.assert_array_equal(np.asarray(image), theirs[i][0].numpy())
        assert label == theirs[i][1]
    their_batches = iter(torch.utils.data.DataLoader(theirs, batch_size=64))
    for b, (images, labels) in enumerate(DataLoader(ours, batch_size=64)):
        their_images, their_labels = next(their_batches)
        np.testing.assert_array_equal(np.asarray(images), their_images.numpy())
        np.testing.assert_array_equal(np.asarray(labels), their_labels.numpy())
        if b == 2:
            break


def test_foreign_transform_goes_item_by_item(real_root):
    calls = []

    def to_float(image):
        calls.append(image.shape)
        return image.astype(np.float32)[None] / 255

    ds = datasets.MNIST(real_root, train=False, transform=to_float)
    images, labels = ds.__getitems__([0, 5, 9])
    assert calls == [(28, 28)] * 3 and images.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(labels, np.asarray(ds.targets)[[0, 5, 9]])


def test_assigned_data_and_targets_are_used(real_root):
    ds = datasets.FashionMNIST(real_root, train=False)
    ds.data, ds.targets = ds.data[:100], tc(np.zeros(100, dtype=np.int64))
    assert len(ds) == 100 and ds[99][1] == 0
    assert ds.__getitems__([5, 99])[1].tolist() == [0, 0]


def test_missing_files_message(tmp_path):
    with pytest.raises(RuntimeError) as info:
        datasets.MNIST(tmp_path, train=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "t10k-images-idx3-ubyte" in message and "download=False" in message
    assert isinstance(info.value, tinyconv.data.DataError)
    with pytest.raises(RuntimeError, match="cifar-10-batches-py"):
        datasets.CIFAR10(tmp_path)


# ---- datasets: CIFAR10 on files written here -----------------------------------------------


def write_cifar(folder, n_per_batch):
    """CIFAR-10's batch files, small, with str keys (how torchvision reads the official ones)."""
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"batch_label": name, "labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
                 "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": classes}, protocol=2))


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    write_cifar(folder, n_per_batch=8)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    class SmallCIFAR10(datasets.CIFAR10):
        resources = md5
        num_samples = {"train": 40, "test": 8}

    class TheirCIFAR10(torchvision.datasets.CIFAR10):
        train_list = [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
        test_list = [["test_batch", md5["test_batch"]]]
        meta = {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]}

    return str(root), SmallCIFAR10, TheirCIFAR10


def test_cifar_items_and_attributes_match_torchvision(cifar_root):
    root, ours_cls, theirs_cls = cifar_root
    for train in (True, False):
        ours, theirs = ours_cls(root, train=train), theirs_cls(root, train=train)
        assert isinstance(ours.data, np.ndarray) and ours.data.dtype == np.uint8
        np.testing.assert_array_equal(ours.data, theirs.data)
        assert type(ours.targets) is list and ours.targets == theirs.targets
        assert ours.classes == theirs.classes and ours.class_to_idx == theirs.class_to_idx
        for i in range(len(ours)):
            image, label = ours[i]
            assert image.shape == (32, 32, 3) and type(label) is int
            np.testing.assert_array_equal(image, np.asarray(theirs[i][0]))
            assert label == theirs[i][1]


def test_cifar_pipelines_match_torchvision(cifar_root):
    root, ours_cls, theirs_cls = cifar_root
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ours = ours_cls(root, train=False, transform=T.Compose([
        T.Pad(3, padding_mode="symmetric"), T.CenterCrop(30), T.Grayscale(3), T.ToTensor(),
        T.Normalize(mean, std)]))
    theirs = theirs_cls(root, train=False, transform=tvt.Compose([
        tvt.Pad(3, padding_mode="symmetric"), tvt.CenterCrop(30), tvt.Grayscale(3),
        tvt.ToTensor(), tvt.Normalize(mean, std)]))
    batch, labels = ours.__getitems__(list(range(8)))
    for i in range(8):
        expected = theirs[i][0].numpy()
        np.testing.assert_array_equal(np.asarray(ours[i][0]), expected)
        np.testing.assert_array_equal(batch[i], expected)
        assert labels[i] == theirs[i][1]


def test_cifar_classic_augmentation_runs_batched(cifar_root):
    root, ours_cls, _ = cifar_root
    pipeline = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = ours_cls(root, train=True, transform=pipeline)
    ds.targets[0] = 9  # in-place relabelling, as label-noise tutorials do
    images, labels = next(iter(DataLoader(ds, batch_size=40)))
    assert tuple(images.shape) == (40, 3, 32, 32) and images.dtype == np.float32
    assert labels.tolist()[0] == 9 and ds[0][1] == 9
    assert float(images.min()) >= -1 and float(images.max()) <= 1


# ---- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda: T.Resize(32, interpolation=T.InterpolationMode.BICUBIC),
     r"Resize: interpolation=<InterpolationMode.BICUBIC.*not supported.*BILINEAR"),
    (lambda: T.Resize(32, interpolation=3), r"interpolation=3 is not supported"),
    (lambda: T.Resize((1, 2, 3)), r"size should be an int or a sequence of length 1 or 2"),
    (lambda: T.Resize((10, 12), max_size=20), r"max_size should only be passed"),
    (lambda: T.RandomCrop(8, padding=(1, 2, 3)), r"RandomCrop: padding must be"),
    (lambda: T.RandomCrop(8, padding_mode="wrap"), r"padding_mode must be one of"),
    (lambda: T.Pad(-1), r"Pad: padding must be non-negative, got -1"),
    (lambda: T.Pad(2, fill="red"), r"Pad: fill must be a number"),
    (lambda: T.RandomRotation(-5), r"must be non-negative, got -5"),
    (lambda: T.RandomRotation(5, expand=True), r"expand=True is not supported"),
    (lambda: T.RandomRotation(5, center=(1, 1)), r"center=\(1, 1\) is not supported"),
    (lambda: T.RandomRotation(5, interpolation=T.InterpolationMode.BILINEAR),
     r"RandomRotation: interpolation=.*BILINEAR.* supported: InterpolationMode.NEAREST"),
    (lambda: T.Normalize((0.5,), (0.0,)), r"std evaluated to zero"),
    (lambda: T.Normalize("a", "b"), r"mean and std must be numbers"),
    (lambda: T.Grayscale(2), r"num_output_channels should be either 1 or 3, got 2"),
    (lambda: T.RandomHorizontalFlip(1.5), r"p must be a probability in \[0, 1\], got 1.5"),
    (lambda: T.CenterCrop((1, 2, 3)), r"CenterCrop: size must be an int or a sequence"),
    (lambda: T.Lambda(3), r"lambd should be callable, got int"),
    (lambda: T.RandomResizedCrop(8, scale=(0.9, 0.1)), r"scale and ratio must be \(min, max\)"),
    (lambda: T.RandomResizedCrop(8, ratio=1.0), r"scale and ratio must be sequences"),
    (lambda: T.RandomResizedCrop(8, interpolation=T.InterpolationMode.LANCZOS),
     r"RandomResizedCrop: interpolation=.*LANCZOS.*not supported"),
    (lambda: T.ConvertImageDtype(np.int32), r"dtype must be a float dtype or uint8, got int32"),
])
def test_bad_constructor_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_bad_inputs():
    with pytest.raises(TypeError, match=r"ToTensor: pic should be a NumPy image.*got a Tensor"):
        T.ToTensor()(tc(float_chw()))
    with pytest.raises(TypeError, match=r"Normalize: expected a Tensor.*got ndarray"):
        T.Normalize((0.5,), (0.5,))(grey_image())
    with pytest.raises(TypeError, match=r"input tensor should be a float tensor, got uint8"):
        T.Normalize((0.5,), (0.5,))(tc(grey_image()[None]))
    with pytest.raises(ValueError, match=r"std has 2 values but the tensor has 3 channels"):
        T.Normalize((0.5,), (0.5, 0.2))(tc(float_chw()))
    with pytest.raises(ValueError, match=r"required crop size \(40, 40\) is larger"):
        T.RandomCrop(40)(rgb_image())
    with pytest.raises(TypeError, match=r"CenterCrop: expected a tinyconv Tensor.*got list"):
        T.CenterCrop(3)([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"Resize: expected a NumPy image.*shape \(2, 3, 4, 5\)"):
        T.Resize(3)(np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"Grayscale: expected an image with 1 or 3 channels"):
        T.Grayscale()(tc(float_chw(c=2)))
    with pytest.raises(TypeError, match=r"tensor or list of tensors expected, got ndarray"):
        utils.make_grid(float_chw())
    with pytest.raises(TypeError, match=r"value_range has to be a tuple"):
        utils.make_grid(tc(float_chw()), normalize=True, value_range=[0, 1])
