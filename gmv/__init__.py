"""gmv: data valuation of generative models by similarity matching (GMValuator).

The library in one call::

    from gmv import valuate
    result = valuate(train_images, generated_images, embedder="pixels", matcher="flat", k=10)
    result.values  # one value per training image, summing to the number of generated images
"""

from gmv.errors import GmvError

__all__ = ["GmvError", "valuate"]
__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing gmv must not import torch/faiss
    if name == "valuate":
        from gmv.valuation.api import valuate

        return valuate
    raise AttributeError(name)
