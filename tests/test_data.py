"""Data sources, the ImageSet container and the stratified X_v1 / X_v2 split."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gmv.data import ImageSet, Split, concat, load_images, split_imageset, stratified_split
from gmv.data import sources
from gmv.data.sources import load_celeba, load_cifar10, load_digits, load_folder, load_mnist, load_npz
from gmv.errors import GmvError

CIFAR = "cifar10_train_2000pc.npz"


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_digits()


def rng_images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def write_png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# --- digits --------------------------------------------------------------------------------------


def test_digits_default(digits):
    assert len(digits) == 1797
    assert digits.images.dtype == np.uint8
    assert digits.images.shape == (1797, 32, 32, 1)
    assert digits.shape == (32, 32, 1)
    assert digits.labels.dtype == np.int64
    assert sorted(np.unique(digits.labels).tolist()) == list(range(10))
    assert digits.class_names == [str(i) for i in range(10)]
    # rescaled from sklearn's 0..16 to the full 0..255 range, not left at 0..16
    assert digits.images.min() == 0 and digits.images.max() == 255
    assert (digits.images > 16).mean() > 0.2


def test_digits_options():
    s = load_digits(image_size=None, channels=3, limit=10)
    assert s.images.shape == (10, 8, 8, 3)
    # grey repeated to RGB, and the native 8×8 pixels are exactly round(v·255/16)
    from sklearn.datasets import load_digits as sk_digits

    raw = sk_digits().images[:10]
    expect = np.rint(raw * 255.0 / 16.0).astype(np.uint8)
    for ch in range(3):
        np.testing.assert_array_equal(s.images[..., ch], expect)


# --- stratified split ----------------------------------------------------------------------------

COUNTS = {0: 10, 1: 7, 2: 5, 3: 3, 5: 12}


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    lab = np.concatenate([np.full(n, c) for c, n in COUNTS.items()])
    return np.random.default_rng(1).permutation(lab).astype(np.int64)


@pytest.mark.parametrize("ratio", [0.5, 0.3, 0.8])
def test_split_disjoint_covering_and_sizes(labels, ratio):
    sp = stratified_split(labels, ratio=ratio, seed=3)
    assert sp.v1.dtype == np.int64 and sp.v2.dtype == np.int64
    assert np.intersect1d(sp.v1, sp.v2).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([sp.v1, sp.v2])), np.arange(len(labels)))
    for c, n in COUNTS.items():
        n1 = int((labels[sp.v1] == c).sum())
        n2 = int((labels[sp.v2] == c).sum())
        assert n1 == int(np.floor(ratio * n + 0.5)), (c, n, n1)  # rounded half up
        assert n1 + n2 == n


def test_split_reproducible_and_seed_dependent(labels):
    a = stratified_split(labels, seed=7)
    b = stratified_split(labels, seed=7)
    c = stratified_split(labels, seed=8)
    np.testing.assert_array_equal(a.v1, b.v1)
    np.testing.assert_array_equal(a.v2, b.v2)
    assert not np.array_equal(a.v1, c.v1)


def test_split_classes_filter(labels):
    sp = stratified_split(labels, classes=[5, 1], seed=0)
    used = np.concatenate([sp.v1, sp.v2])
    np.testing.assert_array_equal(np.sort(used), np.flatnonzero(np.isin(labels, [1, 5])))
    assert set(labels[sp.v1].tolist()) == {1, 5} and set(labels[sp.v2].tolist()) == {1, 5}


def test_split_per_class_limit(labels):
    sp = stratified_split(labels, ratio=0.5, per_class_limit=4, seed=0)
    assert np.intersect1d(sp.v1, sp.v2).size == 0
    for c, n in COUNTS.items():
        m = min(n, 4)
        assert (labels[sp.v1] == c).sum() == (m + 1) // 2  # half up: 3 of 3 → 2 / 1
        assert (labels[sp.v2] == c).sum() == m // 2
    # the capped images are a seeded random subset, not just the first ones of the class
    other = stratified_split(labels, ratio=0.5, per_class_limit=4, seed=1)
    assert not np.array_equal(np.concatenate([sp.v1, sp.v2]), np.concatenate([other.v1, other.v2]))


def test_split_rounds_half_up_for_every_class():
    """Odd classes of 5 and 7 both give v1 the extra image (banker's rounding gave 2 / 3 and 4 / 3)."""
    labels = np.array([0] * 5 + [1] * 7 + [2] * 4)
    sp = stratified_split(labels, ratio=0.5, seed=0)
    assert [(labels[sp.v1] == c).sum() for c in (0, 1, 2)] == [3, 4, 2]
    assert [(labels[sp.v2] == c).sum() for c in (0, 1, 2)] == [2, 3, 2]
    sp = stratified_split(labels, ratio=0.3, seed=0)  # 1.5 → 2, 2.1 → 2, 1.2 → 1
    assert [(labels[sp.v1] == c).sum() for c in (0, 1, 2)] == [2, 2, 1]


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_split_bad_ratio(labels, ratio):
    with pytest.raises(GmvError, match="ratio"):
        stratified_split(labels, ratio=ratio)


def test_split_absent_class(labels):
    with pytest.raises(GmvError, match=r"\[4\]"):
        stratified_split(labels, classes=[0, 4])


def test_split_empty_classes(labels):
    with pytest.raises(GmvError, match="no classes"):
        stratified_split(labels, classes=[])


def test_split_too_few_images():
    lab = np.array([0, 0, 0, 0, 1])
    with pytest.raises(GmvError, match="class 1 has 1 images"):
        stratified_split(lab, ratio=0.5)
    with pytest.raises(GmvError, match="too few"):
        stratified_split(np.array([0, 0, 0, 1, 1, 1]), ratio=0.9)  # round(2.7) = 3 = all of them


def test_split_save_load_roundtrip(tmp_path, labels):
    sp = stratified_split(labels, seed=2)
    path = sp.save(tmp_path / "split.npz")
    assert path == tmp_path / "split.npz" and path.is_file()
    back = Split.load(path)
    np.testing.assert_array_equal(back.v1, sp.v1)
    np.testing.assert_array_equal(back.v2, sp.v2)
    assert back.v1.dtype == np.int64
    assert not list(tmp_path.glob("*.tmp*"))


def test_split_imageset():
    images = rng_images(12)
    s = ImageSet(images, np.repeat([0, 1, 2], 4), name="toy")
    a, b = split_imageset(s, stratified_split(s.labels, seed=0))
    assert (len(a), len(b)) == (6, 6)
    assert a.name == "toy_v1" and b.name == "toy_v2"
    both = np.concatenate([a.images, b.images]).reshape(12, -1)
    assert {r.tobytes() for r in both} == {r.tobytes() for r in images.reshape(12, -1)}


# --- npz source ----------------------------------------------------------------------------------


def test_npz_roundtrip(tmp_path):
    images = rng_images(6, 5, 7, 3)
    attrs = np.random.default_rng(2).integers(0, 2, (6, 4)).astype(np.uint8)
    s = ImageSet(images, np.array([0, 1, 2, 0, 1, 2]), class_names=["a", "b", "c"], attributes=attrs,
                 attr_names=["w", "x", "y", "z"], name="toy", extras={"identity": np.arange(6) + 100})
    path = s.save_npz(tmp_path / "toy.npz")
    back = load_npz(path)
    np.testing.assert_array_equal(back.images, images)
    assert back.images.dtype == np.uint8
    np.testing.assert_array_equal(back.labels, s.labels)
    assert back.labels.dtype == np.int64
    np.testing.assert_array_equal(back.attributes, attrs)
    assert back.attr_names == ["w", "x", "y", "z"]
    assert back.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(back.extras["identity"], np.arange(6) + 100)
    assert back.name == "toy"
    assert not list(tmp_path.glob("*.tmp*"))


def test_npz_roundtrip_grey_without_labels(tmp_path):
    s = ImageSet(rng_images(3, 4, 4, 1)[..., 0], None)  # N×H×W grey becomes N×H×W×1
    assert s.shape == (4, 4, 1)
    np.testing.assert_array_equal(s.labels, [-1, -1, -1])
    back = load_npz(s.save_npz(tmp_path / "g.npz"))
    np.testing.assert_array_equal(back.images, s.images)
    np.testing.assert_array_equal(back.labels, [-1, -1, -1])
    assert back.class_names is None and back.attributes is None


def test_npz_attributes_without_names_roundtrip(tmp_path):
    attrs = np.eye(3, dtype=np.uint8)
    s = ImageSet(rng_images(3), None, attributes=attrs)
    back = load_npz(s.save_npz(tmp_path / "a.npz"))
    np.testing.assert_array_equal(back.attributes, attrs)
    assert back.attr_names is None


def test_npz_without_images(tmp_path):
    np.savez(tmp_path / "x.npz", pixels=rng_images(2), labels=np.zeros(2))
    with pytest.raises(GmvError, match="`images`") as e:
        load_npz(tmp_path / "x.npz")
    assert "pixels" in str(e.value)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_npz_float_images(tmp_path, scale):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32) * scale
    np.savez(tmp_path / "f.npz", images=x)
    with pytest.raises(GmvError, match="uint8"):
        load_npz(tmp_path / "f.npz")


def test_npz_missing_and_unreadable(tmp_path):
    with pytest.raises(GmvError, match="not found"):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(GmvError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")
    with open(tmp_path / "single.npz", "wb") as f:
        np.save(f, rng_images(2))
    with pytest.raises(GmvError, match="single.npz"):
        load_npz(tmp_path / "single.npz")


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", images=rng_images(4), labels=np.arange(3))
    with pytest.raises(GmvError, match="3 labels for 4 images"):
        load_npz(tmp_path / "m.npz")


def test_shared_cifar_npz(shared_data):
    s = load_npz(shared_data / CIFAR)
    assert s.images.shape == (20000, 32, 32, 3) and s.images.dtype == np.uint8
    assert s.class_names is not None and len(s.class_names) == 10
    assert s.class_names[0] == "airplane"
    np.testing.assert_array_equal(np.bincount(s.labels), np.full(10, 2000))
    assert "index_within_class" in s.extras

    small = load_npz(shared_data / CIFAR, limit=7, image_size=16, channels=1)
    assert small.images.shape == (7, 16, 16, 1) and small.images.dtype == np.uint8
    np.testing.assert_array_equal(small.labels, s.labels[:7])
    np.testing.assert_array_equal(small.extras["index_within_class"], s.extras["index_within_class"][:7])
    # grey by luminance of the (resized) first images: close to the mean over RGB channels
    grey_ref = s.images[:7].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    coarse = grey_ref.reshape(7, 16, 2, 16, 2).mean(axis=(2, 4))
    assert np.abs(small.images[..., 0].astype(np.float32) - coarse).mean() < 6.0


def test_resize_and_channels_helpers():
    x = np.full((2, 8, 8, 3), 77, np.uint8)
    x[1] = 200
    r = sources.resize(x, 4)
    assert r.shape == (2, 4, 4, 3) and r.dtype == np.uint8
    assert (r[0] == 77).all() and (r[1] == 200).all()
    assert sources.resize(x, 8) is x and sources.resize(x, None) is x
    g = sources.to_channels(x, 1)
    assert g.shape == (2, 8, 8, 1) and (g[0] == 77).all()
    assert sources.to_channels(g, 3).shape == (2, 8, 8, 3)
    with pytest.raises(GmvError, match="channels"):
        sources.to_channels(x, 2)


# --- folder source -------------------------------------------------------------------------------


def test_folder_class_subfolders(tmp_path):
    root = tmp_path / "imgs"
    # created out of order: labels must follow the sorted folder names
    for name, value, n in [("zebra", 10, 2), ("ant", 200, 3), ("moth", 90, 1)]:
        for i in range(n):
            write_png(root / name / f"{i}.png", np.full((6, 6, 3), value + i, np.uint8))
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    s = load_folder(root)
    assert s.class_names == ["ant", "moth", "zebra"]
    assert s.images.shape == (6, 6, 6, 3)
    np.testing.assert_array_equal(s.labels, [0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(s.images[:, 0, 0, 0], [200, 201, 202, 90, 10, 11])
    assert s.name == "imgs"
    assert len(load_folder(root, limit=4)) == 4
    grey = load_folder(root, channels=1, image_size=3)
    assert grey.images.shape == (6, 3, 3, 1)


def test_folder_flat(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"im{i}.png", np.full((5, 4, 3), 40 * i, np.uint8))
    s = load_folder(tmp_path)
    np.testing.assert_array_equal(s.labels, [-1, -1, -1])
    assert s.class_names is None
    assert s.images.shape == (3, 5, 4, 3)
    np.testing.assert_array_equal(s.images[:, 2, 2, 1], [0, 40, 80])


def test_folder_empty(tmp_path):
    with pytest.raises(GmvError, match="no images"):
        load_folder(tmp_path)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(GmvError, match="no images"):
        load_folder(tmp_path)
    with pytest.raises(GmvError, match="not found"):
        load_folder(tmp_path / "missing")


def test_folder_unreadable_image(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x00garbage, not a png at all" * 10)
    with pytest.raises(GmvError, match="b.png"):
        load_folder(tmp_path)


def test_folder_mixed_sizes(tmp_path):
    write_png(tmp_path / "a.png", np.full((8, 8, 3), 50, np.uint8))
    write_png(tmp_path / "b.png", np.full((12, 10, 3), 50, np.uint8))
    with pytest.raises(GmvError, match="different sizes"):
        load_folder(tmp_path)
    s = load_folder(tmp_path, image_size=6)
    assert s.images.shape == (2, 6, 6, 3)
    assert (s.images == 50).all()


# --- load_images dispatch ------------------------------------------------------------------------


def test_load_images_dispatch(tmp_path):
    d = load_images("digits", limit=5, image_size=16)
    assert d.name == "digits" and d.images.shape == (5, 16, 16, 1)

    s = ImageSet(rng_images(4), np.arange(4))
    back = load_images(s.save_npz(tmp_path / "set.npz"))
    np.testing.assert_array_equal(back.images, s.images)
    assert len(load_images(str(tmp_path / "set.npz"), limit=2)) == 2

    folder = tmp_path / "folder"
    for i in range(2):
        write_png(folder / f"{i}.png", np.full((4, 4, 3), i, np.uint8))
    f = load_images(folder)
    assert f.images.shape == (2, 4, 4, 3) and f.name == "folder"

    with pytest.raises(GmvError, match="does not exist"):
        load_images("nonsense-dataset")
    with pytest.raises(GmvError, match="digits"):
        load_images(tmp_path / "nothing_here")
    with pytest.raises(GmvError, match="not found"):
        load_images(tmp_path / "absent.npz")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(GmvError, match="cannot load images"):
        load_images(tmp_path / "file.txt")


# --- torchvision datasets, offline ---------------------------------------------------------------


@pytest.mark.parametrize("loader, expected", [
    (load_cifar10, "cifar-10-batches-py"),
    (load_mnist, "MNIST/raw"),
    (load_celeba, "img_align_celeba"),
])
def test_torchvision_offline_names_expected_files(tmp_path, loader, expected):
    with pytest.raises(GmvError) as e:
        loader(root=tmp_path, download=False)
    msg = str(e.value)
    assert expected in msg
    assert str(tmp_path) in msg
    assert "download" in msg
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing was fetched


def test_load_images_by_name_offline(tmp_path):
    with pytest.raises(GmvError, match="cifar-10-batches-py"):
        load_images("cifar10", root=tmp_path)


# --- ImageSet ------------------------------------------------------------------------------------


def test_concat():
    a = ImageSet(rng_images(2, 4, 4, 3), [0, 1], attributes=np.ones((2, 2), np.uint8), attr_names=["p", "q"])
    b = ImageSet(rng_images(3, 4, 4, 3, seed=1), [2, 2, 2], attributes=np.zeros((3, 2), np.uint8),
                 attr_names=["p", "q"])
    c = concat([a, b], name="ab")
    assert len(c) == 5 and c.name == "ab"
    np.testing.assert_array_equal(c.labels, [0, 1, 2, 2, 2])
    np.testing.assert_array_equal(c.images[2:], b.images)
    assert c.attributes.shape == (5, 2) and c.attr_names == ["p", "q"]
    c2 = concat([a, ImageSet(rng_images(1, 4, 4, 3), None)], name="x")
    assert c2.attributes is None and c2.attr_names is None
    # per-image extras (CelebA's identity) follow their images when every part has them
    a.extras, b.extras = {"identity": np.array([7, 8]), "x": np.zeros(2)}, {"identity": np.array([9, 9, 5])}
    np.testing.assert_array_equal(concat([a, b], name="ab").extras["identity"], [7, 8, 9, 9, 5])
    assert set(concat([a, b], name="ab").extras) == {"identity"}

    with pytest.raises(GmvError, match="different shapes"):
        concat([a, ImageSet(rng_images(2, 5, 4, 3), None)], name="bad")
    with pytest.raises(GmvError, match="different shapes"):
        concat([a, ImageSet(rng_images(2, 4, 4, 1), None)], name="bad")


def test_from_float_and_to_float():
    x = np.array([-1.0, 1.0, 0.0, -1.5, 2.0, 0.5], np.float32).reshape(1, 1, 2, 3)
    s = ImageSet.from_float(x)
    assert s.images.shape == (1, 2, 3, 1) and s.images.dtype == np.uint8
    np.testing.assert_array_equal(s.images[0, ..., 0], [[0, 255, 128], [0, 255, 191]])
    np.testing.assert_array_equal(s.labels, [-1])
    rgb = np.random.default_rng(0).uniform(-1, 1, (3, 3, 5, 4)).astype(np.float32)
    s3 = ImageSet.from_float(rgb, labels=[1, 2, 3])
    assert s3.shape == (5, 4, 3)
    back = s3.to_float()
    assert back.shape == rgb.shape and back.dtype == np.float32
    assert np.abs(back - rgb).max() <= 1.0 / 127.5 / 2 + 1e-6
    np.testing.assert_array_equal(ImageSet.from_float(back).images, s3.images)


def test_imageset_validation():
    with pytest.raises(GmvError, match="uint8"):
        ImageSet(np.zeros((2, 4, 4, 3), np.float32), None)
    with pytest.raises(GmvError, match="C = 1 or 3"):
        ImageSet(np.zeros((2, 4, 4, 2), np.uint8), None)
    with pytest.raises(GmvError, match="empty"):
        ImageSet(np.zeros((0, 4, 4, 3), np.uint8), None)
    with pytest.raises(GmvError, match="2 labels for 3 images"):
        ImageSet(np.zeros((3, 4, 4, 3), np.uint8), [0, 1])
    with pytest.raises(GmvError, match="attribute rows"):
        ImageSet(np.zeros((3, 4, 4, 3), np.uint8), None, attributes=np.zeros((2, 1), np.uint8))


def test_subset_keeps_extras_and_attributes():
    s = ImageSet(rng_images(5), np.arange(5), attributes=np.arange(10, dtype=np.uint8).reshape(5, 2),
                 extras={"identity": np.arange(5) * 10})
    t = s.subset(np.array([4, 1]), name="sub")
    np.testing.assert_array_equal(t.labels, [4, 1])
    np.testing.assert_array_equal(t.images, s.images[[4, 1]])
    np.testing.assert_array_equal(t.attributes, [[8, 9], [2, 3]])
    np.testing.assert_array_equal(t.extras["identity"], [40, 10])
    assert t.name == "sub" and s.name == "images"
