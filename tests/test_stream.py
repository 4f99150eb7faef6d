"""Streaming image sets: lazy folders and npz files read exactly the pixels the eager loaders give."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from gmv.data.imageset import ImageSet
from gmv.data.npz_stream import open_npz
from gmv.data.pixels import ArrayPixels, FilePixels, images_digest
from gmv.data.sources import load_folder, load_npz
from gmv.data.stream import LazyImageSet, concat_sets, iter_batches, open_folder, open_images
from gmv.errors import GmvError


def rng_images(n, h=8, w=8, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def write_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr if arr.shape[-1] == 3 else arr[..., 0]).save(path)


@pytest.fixture()
def folder(tmp_path):
    """23 random 8×8 RGB images in three class folders (created out of order)."""
    images = rng_images(23)
    root = tmp_path / "imgs"
    for i, a in enumerate(images):
        write_png(root / ["zebra", "ant", "moth"][i % 3] / f"{i:02d}.png", a)
    return root


def test_lazy_folder_indexes_like_the_eager_set(folder):
    lazy, eager = open_folder(folder), load_folder(folder)
    assert isinstance(lazy, LazyImageSet) and len(lazy) == len(eager) == 23
    assert lazy.shape == eager.shape == (8, 8, 3) and lazy.images.shape == eager.images.shape
    assert lazy.class_names == eager.class_names == ["ant", "moth", "zebra"]
    np.testing.assert_array_equal(lazy.labels, eager.labels)
    assert lazy.ids[0] == "ant/01.png" and len(set(lazy.ids)) == 23
    px = lazy.images
    np.testing.assert_array_equal(px[3], eager.images[3])
    np.testing.assert_array_equal(px[-1], eager.images[-1])
    np.testing.assert_array_equal(px[4:11], eager.images[4:11])
    np.testing.assert_array_equal(px[1:20:4], eager.images[1:20:4])
    idx = np.array([[17, 2], [2, 0]])  # unsorted, repeated, 2-D
    np.testing.assert_array_equal(px[idx], eager.images[idx])
    mask = eager.labels == 1
    np.testing.assert_array_equal(px[mask], eager.images[mask])
    np.testing.assert_array_equal(lazy[[5, 6]], eager[[5, 6]])  # the set itself indexes its pixels
    np.testing.assert_array_equal(np.asarray(px), eager.images)
    with pytest.raises(IndexError):
        px[23]
    sub = lazy.subset(np.array([9, 3]))
    np.testing.assert_array_equal(sub.images[:], eager.images[[9, 3]])
    assert list(sub.ids) == [lazy.ids[9], lazy.ids[3]]
    np.testing.assert_array_equal(lazy.load().images, eager.images)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_cover_the_set_in_order(folder, workers):
    eager = load_folder(folder, image_size=4, channels=1)
    lazy = open_folder(folder, image_size=4, channels=1)
    got = list(iter_batches(lazy.images, batch_size=5, num_workers=workers))
    assert [a for a, _ in got] == [0, 5, 10, 15, 20] and [len(b) for _, b in got] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), eager.images)
    part = list(iter_batches(lazy.images, ranges=[(7, 9), (1, 2)], num_workers=workers))
    np.testing.assert_array_equal(part[0][1], eager.images[7:9])
    np.testing.assert_array_equal(part[1][1], eager.images[1:2])


def test_unreadable_image_in_a_worker_is_one_clean_error(folder):
    (folder / "ant" / "99.png").write_bytes(b"\x00 not a png " * 20)
    with pytest.raises(GmvError, match="unreadable image .*99.png"):
        open_folder(folder)  # without image_size every header is read at open: caught before any work
    lazy = open_folder(folder, image_size=8)  # with it, the file is found when decoded (in a worker)
    with pytest.raises(GmvError, match="unreadable image .*99.png") as err:
        for _ in iter_batches(lazy.images, batch_size=4, num_workers=2):
            pass
    assert "Traceback" not in str(err.value) and "\n" not in str(err.value)


def test_mixed_sizes_stop_with_one_line_naming_the_file(folder):
    lazy = open_folder(folder)
    write_png(folder / "moth" / "05.png", rng_images(1, 5, 7)[0])  # changed after the headers were read
    with pytest.raises(GmvError, match=r"different sizes \(moth/05.png is 5×7×3, ant/01.png 8×8×3\).*--image-size"):
        for _ in iter_batches(lazy.images, batch_size=4, num_workers=1):
            pass
    with pytest.raises(GmvError, match=r"different sizes \(8×8 e.g. ant/01.png; 5×7 e.g. moth/05.png\)"):
        open_folder(folder)  # read from the headers at open, before any work
    assert open_folder(folder, image_size=6).images[:].shape == (23, 6, 6, 3)
    Image.fromarray(rng_images(1, 9, 4)[0]).save(folder / "ant" / "01.jpg")  # not a PNG: PIL reads the header
    with pytest.raises(GmvError, match="9×4 e.g. ant/01.jpg"):
        open_folder(folder)


def test_loose_images_beside_class_folders_are_an_error(folder):
    write_png(folder / "stray.png", rng_images(1)[0])
    write_png(folder / "also_stray.png", rng_images(1)[0])
    (folder / "notes.txt").write_text("not an image: fine")
    for opener in (open_folder, load_folder):
        with pytest.raises(GmvError, match="also_stray.png, stray.png.*belong to no class"):
            opener(folder)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_streams_the_eager_pixels(tmp_path, compressed):
    images = rng_images(30, 6, 6, 3)
    path = tmp_path / "set.npz"
    (np.savez_compressed if compressed else np.savez)(path, images=images, labels=np.arange(30) % 4)
    kind = {i.filename: i.compress_type for i in zipfile.ZipFile(path).infolist()}["images.npy"]
    assert kind == (zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
    lazy = open_npz(path, cache_dir=tmp_path / "cache")
    assert isinstance(lazy.images, FilePixels)  # never the whole array in memory
    assert (tmp_path / "cache" / "decoded").is_dir() == compressed  # deflated: decompressed once to a file
    np.testing.assert_array_equal(np.asarray(lazy.images), images)
    np.testing.assert_array_equal(lazy.images[[29, 0, 13]], images[[29, 0, 13]])
    np.testing.assert_array_equal(lazy.labels, np.arange(30) % 4)
    assert lazy.images.fingerprint() == images_digest(images)  # same pixels, same cache key as an array
    for opts in ({"image_size": 4}, {"channels": 1, "limit": 11}, {"image_size": 3, "channels": 1}):
        np.testing.assert_array_equal(np.asarray(open_npz(path, cache_dir=tmp_path / "cache", **opts).images),
                                      load_npz(path, **opts).images, err_msg=str(opts))
    assert isinstance(open_npz(path).images, FilePixels if not compressed else ArrayPixels)  # no cache dir


def test_npz_errors_match_the_eager_loader(tmp_path):
    np.savez(tmp_path / "noimg.npz", labels=np.arange(3))
    with pytest.raises(GmvError, match="no `images` array"):
        open_npz(tmp_path / "noimg.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(GmvError, match="uint8"):
        open_npz(tmp_path / "float.npz")
    with pytest.raises(GmvError, match="not found"):
        open_npz(tmp_path / "missing.npz")


def test_concat_of_lazy_and_eager_sets(folder, tmp_path):
    eager = load_folder(folder)
    other = ImageSet(rng_images(5, seed=3), np.arange(5))
    pool = concat_sets([open_folder(folder), other], "pool")
    assert isinstance(pool, LazyImageSet) and len(pool) == 28
    np.testing.assert_array_equal(np.asarray(pool.images), np.concatenate([eager.images, other.images]))
    np.testing.assert_array_equal(pool.images[[27, 0, 22, 23]], np.concatenate([eager.images, other.images])[[27, 0, 22, 23]])
    assert list(pool.ids[-2:]) == ["3", "4"] and pool.ids[0] == "ant/01.png"  # row numbers where a set has no ids
    both = concat_sets([eager, other], "pool")
    assert isinstance(both, ImageSet)  # all in memory: the plain ImageSet, as before
    assert isinstance(open_images(str(folder)), LazyImageSet) and isinstance(open_images("digits", limit=3), ImageSet)


def test_ra3_gallery_reads_only_the_images_it_shows(folder, tmp_path, monkeypatch):
    import gmv.data.pixels as pixels
    from gmv.analysis.ra3 import ra3_report

    lazy = open_folder(folder)
    reads = []
    real = pixels.decode_image
    monkeypatch.setattr(pixels, "decode_image", lambda p, *a: reads.append(p) or real(p, *a))
    rng = np.random.default_rng(0)
    values = rng.random(len(lazy))
    emb = rng.normal(size=(len(lazy), 4)).astype(np.float32)
    r = ra3_report(values, emb, emb[:10], lazy.images, lazy.subset(np.arange(10)).images, tmp_path, n=2, k=3)
    assert (tmp_path / "ra3_high.png").stat().st_size > 0
    assert len(reads) == 2 * 2 * (1 + 3)  # two galleries × two rows × (training image + three matches)
    assert r["ra3_high_idx"] == list(np.argsort(-values)[:2])


@pytest.mark.parametrize("compressed, cache", [(False, None), (True, None), (True, "cache")])
def test_grey_npz_without_channel_axis(tmp_path, compressed, cache):
    grey = rng_images(7, 5, 5, 1)[..., 0]  # N×H×W, as MNIST-like files store it
    (np.savez_compressed if compressed else np.savez)(tmp_path / "g.npz", images=grey)
    lazy = open_npz(tmp_path / "g.npz", cache_dir=None if cache is None else tmp_path / cache)
    assert lazy.shape == (5, 5, 1)
    np.testing.assert_array_equal(lazy[:], load_npz(tmp_path / "g.npz").images)


@pytest.mark.parametrize("image_size, channels", [(16, 1), (16, 3), (40, 3), (None, 1), (None, None)])
def test_folder_and_npz_give_the_same_pixels(tmp_path, image_size, channels):
    """One resize and one grey conversion for every source: the same images from PNG files (streamed or
    loaded) and from an .npz (streamed or loaded) are equal to the bit, resized or not."""
    from PIL import Image

    from gmv.data.sources import load_images
    from gmv.data.stream import open_images

    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, size=(6, 24, 24, 3), dtype=np.uint8)  # noise: the hardest case for a resize
    rgb[:3] = np.clip(rgb[:3].astype(int) // 4 + np.arange(24)[None, :, None, None] * 8, 0, 255)  # and gradients
    (tmp_path / "png").mkdir()
    for i, img in enumerate(rgb):
        Image.fromarray(img).save(tmp_path / "png" / f"{i}.png")
    np.savez(tmp_path / "set.npz", images=rgb)
    options = {k: v for k, v in dict(image_size=image_size, channels=channels).items() if v is not None}
    expected = load_images(tmp_path / "set.npz", **options).images
    assert expected.shape == (6, image_size or 24, image_size or 24, channels or 3)
    for spec in (tmp_path / "png", tmp_path / "set.npz"):
        assert np.array_equal(load_images(spec, **options).images, expected), spec
        assert np.array_equal(open_images(spec, **options).load().images, expected), spec


def test_grey_files_and_grey_npz_give_the_same_pixels(tmp_path):
    from PIL import Image

    from gmv.data.sources import load_images

    grey = np.random.default_rng(5).integers(0, 256, size=(4, 20, 20), dtype=np.uint8)
    (tmp_path / "png").mkdir()
    for i, img in enumerate(grey):
        Image.fromarray(img, mode="L").save(tmp_path / "png" / f"{i}.png")
    np.savez(tmp_path / "grey.npz", images=grey[..., None])
    for size, channels in ((8, 1), (8, 3), (None, 1)):
        opts = {"channels": channels} | ({"image_size": size} if size else {})
        assert np.array_equal(load_images(tmp_path / "png", **opts).images,
                              load_images(tmp_path / "grey.npz", **opts).images), (size, channels)
