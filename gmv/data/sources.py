"""Data sources: every loader returns an `ImageSet` (uint8 N×H×W×C, int64 labels).

- `digits`  scikit-learn's bundled 8×8 digits (1,797 images): the default, needs no download.
- `photos`  32×32 patches of scikit-learn's two bundled sample photographs (a temple, a flower; 520
            patches, labelled by photograph): natural images of another source, no download.
- `mnist`, `cifar10`, `celeba`  torchvision datasets under `root` (`download=True` fetches them
  on a machine with network; offline with files missing → a GmvError naming the files).
- `npz`     the shared format: `images` uint8 N×H×W×C, `labels`, optional `attributes`/`attr_names`.
- `folder`  a directory of images; class sub-folders optional.

`load_images(spec)` accepts any of these by name, a `.npz` path or a folder path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from gmv.data.imageset import ImageSet
from gmv.data.stream import IMAGE_SUFFIXES  # noqa: F401  (re-exported)
from gmv.errors import GmvError



def resize(images: np.ndarray, size: int | None) -> np.ndarray:
    """Resize uint8 N×H×W×C to size×size with antialiased bilinear interpolation (no-op if equal)."""
    if size is None or images.shape[1:3] == (size, size):
        return images
    import torch
    import torch.nn.functional as F

    out = []
    for start in range(0, len(images), 1024):
        x = torch.from_numpy(images[start : start + 1024]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def to_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Convert N×H×W×C between grey (1) and RGB (3)."""
    if channels is None or images.shape[-1] == channels:
        return images
    if channels == 3 and images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    if channels == 1 and images.shape[-1] == 3:
        grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    raise GmvError(f"cannot convert {images.shape[-1]}-channel images to {channels} channels")


def _finish(s: ImageSet, image_size: int | None, channels: int | None, limit: int | None) -> ImageSet:
    if limit is not None:
        s = s.subset(np.arange(min(limit, len(s))))
    s.images = to_channels(resize(s.images, image_size), channels)
    return s


def load_digits(image_size: int | None = 32, channels: int | None = None, limit: int | None = None) -> ImageSet:
    """scikit-learn's 8×8 digits (values 0–16), rescaled to 0–255 and resized (default 32×32)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    s = ImageSet(images, d.target, class_names=[str(i) for i in range(10)], name="digits")
    return _finish(s, image_size, channels, limit)


PHOTO_PATCH = 32  # side of the `photos` patches, cut on a grid from each 427×640 photograph


def load_photos(image_size: int | None = PHOTO_PATCH, channels: int | None = None,
                limit: int | None = None) -> ImageSet:
    """Non-overlapping 32×32 patches of scikit-learn's two sample photographs (china.jpg, flower.jpg),
    row by row, labelled 0 (china) and 1 (flower): out-of-distribution images that ship with a dependency."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    patches, labels = [], []
    for label, photo in enumerate(photos.images):
        rows, cols = photo.shape[0] // PHOTO_PATCH, photo.shape[1] // PHOTO_PATCH
        grid = photo[:rows * PHOTO_PATCH, :cols * PHOTO_PATCH].reshape(rows, PHOTO_PATCH, cols, PHOTO_PATCH, 3)
        patches.append(grid.transpose(0, 2, 1, 3, 4).reshape(-1, PHOTO_PATCH, PHOTO_PATCH, 3))
        labels.append(np.full(rows * cols, label, np.int64))
    s = ImageSet(np.concatenate(patches).astype(np.uint8), np.concatenate(labels), class_names=["china", "flower"],
                 name="photos")
    return _finish(s, image_size, channels, limit)


def load_npz(path: str | Path, image_size: int | None = None, channels: int | None = None,
             limit: int | None = None) -> ImageSet:
    path = Path(path)
    if not path.is_file():
        raise GmvError(f"npz file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        raise GmvError(f"cannot read {path} as .npz: {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a single-array .npy file under an .npz name
        raise GmvError(f"{path} is a single .npy array, not an .npz archive; gmv's npz format needs "
                       "`images` uint8 N×H×W×C and optional `labels` (save with ImageSet.save_npz)")
    if "images" not in z.files:
        raise GmvError(f"{path} has no `images` array (found: {', '.join(z.files) or 'nothing'}); "
                       "gmv's npz format needs `images` uint8 N×H×W×C and optional `labels`")
    images = z["images"]
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and images.min() >= -1.0 - 1e-6 and images.max() <= 1.0 + 1e-6:
            raise GmvError(f"{path}: `images` are floats in [−1, 1]; save uint8 pixels 0–255 "
                           "(ImageSet.from_float converts a generator's output)")
        raise GmvError(f"{path}: `images` must be uint8 pixels 0–255, got {images.dtype}")
    labels = z["labels"] if "labels" in z.files else None
    extras = {k: z[k] for k in ("identity", "index_within_class", "filenames") if k in z.files}
    s = ImageSet(
        images, labels,
        class_names=[str(c) for c in z["class_names"]] if "class_names" in z.files else None,
        attributes=z["attributes"] if "attributes" in z.files else None,
        attr_names=[str(c) for c in z["attr_names"]] if "attr_names" in z.files else None,
        name=path.stem, extras=extras,
    )
    return _finish(s, image_size, channels, limit)


def load_folder(path: str | Path, image_size: int | None = None, channels: int | None = None,
                limit: int | None = None) -> ImageSet:
    """Images in `path` (labels −1) or in class sub-folders of `path` (labels by sorted folder name), read
    into memory; `gmv.data.stream.open_folder` reads the same files on demand. Image files at the top level
    beside class sub-folders are an error (they would belong to no class)."""
    from gmv.data.stream import open_folder

    return open_folder(path, image_size=image_size, channels=channels, limit=limit).load()


# --- torchvision datasets -------------------------------------------------------------------

EXPECTED_FILES = {
    "cifar10": "{root}/cifar-10-batches-py/ with data_batch_1 … data_batch_5, test_batch, batches.meta "
               "(the extracted cifar-10-python.tar.gz)",
    "mnist": "{root}/MNIST/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
             "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte",
    "celeba": "{root}/celeba/ with img_align_celeba/ (the JPEGs), list_attr_celeba.txt, identity_CelebA.txt, "
              "list_eval_partition.txt, list_bbox_celeba.txt, list_landmarks_align_celeba.txt",
}


def _torchvision(name: str, make: Callable, root: str | Path, download: bool):
    try:
        return make()
    except (RuntimeError, FileNotFoundError, OSError) as e:
        where = EXPECTED_FILES[name].format(root=Path(root))
        hint = "" if download else " or pass download=true on a machine with network access"
        raise GmvError(f"{name} not found under {root}: expected {where}. Put the files there{hint} "
                       f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load_cifar10(root: str | Path = "data", train: bool = True, download: bool = False,
                 image_size: int | None = None, channels: int | None = None, limit: int | None = None) -> ImageSet:
    from torchvision.datasets import CIFAR10

    ds = _torchvision("cifar10", lambda: CIFAR10(str(root), train=train, download=download), root, download)
    s = ImageSet(np.asarray(ds.data, np.uint8), np.asarray(ds.targets), class_names=list(ds.classes), name="cifar10")
    return _finish(s, image_size, channels, limit)


def load_mnist(root: str | Path = "data", train: bool = True, download: bool = False,
               image_size: int | None = 32, channels: int | None = None, limit: int | None = None) -> ImageSet:
    from torchvision.datasets import MNIST

    ds = _torchvision("mnist", lambda: MNIST(str(root), train=train, download=download), root, download)
    s = ImageSet(ds.data.numpy().astype(np.uint8), ds.targets.numpy(), class_names=[str(i) for i in range(10)],
                 name="mnist")
    return _finish(s, image_size, channels, limit)


def load_celeba(root: str | Path = "data", split: str = "train", download: bool = False, image_size: int = 64,
                limit: int | None = None, channels: int | None = None) -> ImageSet:
    """Aligned CelebA, centre 178×178 crop resized to `image_size` (the shared subset's recipe).

    Labels are the identity (as in the shared subset); the 40 attributes are kept.
    """
    from torchvision.datasets import CelebA
    from torchvision.transforms import functional as TF
    from gmv.console import progress_bar

    ds = _torchvision("celeba", lambda: CelebA(str(root), split=split, target_type=["attr", "identity"],
                                                download=download), root, download)
    n = len(ds) if limit is None else min(limit, len(ds))
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    attrs = np.empty((n, 40), np.uint8)
    ids = np.empty(n, np.int64)
    for i in progress_bar(range(n), desc="celeba", unit="img"):
        im, (attr, ident) = ds[i]
        im = TF.resize(TF.center_crop(im, 178), [image_size, image_size], antialias=True)
        images[i] = np.asarray(im.convert("RGB"))
        attrs[i] = attr.numpy()
        ids[i] = int(ident)
    s = ImageSet(images, ids, attributes=attrs, attr_names=list(ds.attr_names[:40]), name="celeba",
                 extras={"identity": ids.copy()})
    return _finish(s, None, channels, None)


SOURCES: dict[str, Callable[..., ImageSet]] = {
    "digits": load_digits,
    "photos": load_photos,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "celeba": load_celeba,
    "npz": load_npz,
    "folder": load_folder,
}


def load_images(spec: str | Path, **options) -> ImageSet:
    """Load by dataset name (`digits`, `cifar10`, …), `.npz` path or image-folder path."""
    spec_str = str(spec)
    if spec_str in SOURCES and spec_str not in ("npz", "folder"):
        return SOURCES[spec_str](**options)
    path = Path(spec_str)
    if path.suffix == ".npz":
        return load_npz(path, **options)
    if path.is_dir():
        return load_folder(path, **options)
    raise GmvError(f"cannot load images from {spec_str!r}: give a dataset name "
                   f"({', '.join(n for n in SOURCES if n not in ('npz', 'folder'))}), an .npz file or an image folder"
                   + (" (that path does not exist)" if not path.exists() else ""))
