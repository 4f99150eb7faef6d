"""What a training-set edit (gmv/data/edit.py: data.subset, data.addition) means for the rest of a study: the
class set and X̂'s class mix a retrain keeps, the counts the report gives, and the generator handed to the
methods that attribute through it (D-TRAK)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gmv.pipeline.study import Study


def classes_before_removals(s: Study):
    """A subset edit keeps every class of the X_v1 it removed images from (a retrain is the same model), else
    None: the classes of X_v1 itself."""
    if s.edit is None or not len(s.edit.dropped) or not s.cfg.train.conditional:
        return None
    return np.unique(s.edit.sampling_labels).tolist()


def class_mix(s: Study):
    """The labels X̂'s class mix follows when a subset removed images (X_v1 before its removals: retrains on
    different subsets draw the same labels with the same noise), else None (X_v1's own mix)."""
    return None if s.edit is None or not len(s.edit.dropped) else s.edit.sampling_labels


def describe(edit) -> str:
    """The console's words for an edit of X_v1: " (incl. 10 added: 10 noise)", " (5 removed by data.subset)"."""
    if edit is None:
        return ""
    words = ""
    if edit.added.any():
        kinds, counts = np.unique(edit.kind[edit.added], return_counts=True)
        words = f" (incl. {int(edit.added.sum())} added: " + ", ".join(f"{n} {k}" for k, n in zip(kinds, counts)) + ")"
    if len(edit.dropped):
        words += f" ({len(edit.dropped)} removed by data.subset)"
    return words


def edit_counts(s: Study) -> dict[str, int]:
    """n_added and n_added/<kind> when data.addition edited X_v1; n_removed when data.subset did."""
    if s.edit is None:
        return {}
    kinds, counts = np.unique(s.edit.kind[s.edit.added], return_counts=True)
    removed = {"n_removed": int(len(s.edit.dropped))} if len(s.edit.dropped) else {}
    return {"n_added": int(s.edit.added.sum()), **{f"n_added/{k}": int(n) for k, n in zip(kinds, counts)}, **removed}


def bind_generator(s: Study, method) -> None:
    """Give a method that needs the generator the trained module, and the pool (X_v1 ∪ X_v2, as valued; its first
    len(X_v1) images are those the generator trained on) and X̂ with their class ids."""
    from gmv.data.pixels import as_pixels

    pool = [s.v1, *([s.v2] if s.cfg.valuation.held_out else [])]
    gen = np.asarray(as_pixels(s.samples).read_range(0, len(s.samples)))
    method.bind(s.module, np.concatenate([p.images for p in pool]),
                s.datamodule.to_class_ids(np.concatenate([p.labels for p in pool])), gen,
                s.datamodule.to_class_ids(s.samples.labels, "X̂'s labels"), n_train=len(s.v1.images))
