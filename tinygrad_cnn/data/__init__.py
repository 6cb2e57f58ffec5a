"""Datasets and mini-batching: IDX reader, MNIST / Fashion-MNIST / packaged MNIST sample, DataLoader.

>>> from tinygrad_cnn.data import load_dataset, DataLoader
>>> (x_train, y_train), (x_test, y_test) = load_dataset("mnist-sample")
>>> x_train.shape, x_train.dtype, y_train.dtype
((4000, 1, 28, 28), dtype('float32'), dtype('int64'))
>>> for xb, yb in DataLoader(x_train, y_train, batch_size=100, shuffle=True, seed=0):
...     pass
"""

from .datasets import DATASETS, load_dataset
from .idx import DatasetError, load_idx
from .loader import DataLoader, shift_images

__all__ = ["DATASETS", "DataLoader", "DatasetError", "load_dataset", "load_idx", "shift_images"]
