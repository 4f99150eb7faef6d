"""Data: image sets, their sources and the X_v1 / X_v2 split."""

from gmv.data.imageset import ImageSet, concat
from gmv.data.npz_stream import open_npz
from gmv.data.sources import SOURCES, load_images
from gmv.data.split import Split, split_imageset, stratified_split
from gmv.data.stream import LazyImageSet, iter_batches, open_folder, open_images

__all__ = ["ImageSet", "concat", "SOURCES", "load_images", "Split", "split_imageset", "stratified_split",
           "LazyImageSet", "open_images", "open_folder", "open_npz", "iter_batches"]
