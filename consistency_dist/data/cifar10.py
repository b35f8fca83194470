"""CIFAR-10 sources and the seeded train/validation split.

Three sources, one result type: the Keras download (the real path users run on a cluster),
a folder in the official python layout (any number of `data_batch_N` files), and the sample
bundled in this package. Whatever the source, the split is a seeded permutation of indices, so
training and validation never share an image and every worker computes the same split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import pickle

import numpy as np

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SAMPLE_FOLDER = pathlib.Path(__file__).parent / "cifar10_sample" / "cifar-10-batches-py"
IMAGE_SHAPE = (32, 32, 3)


class DataError(RuntimeError):
    """The data is missing or unreadable; the message names the file and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Cifar10:
    """Images are uint8 (N, 32, 32, 3); labels int64 (N,). `train_index` maps rows to the source."""

    x_train: np.ndarray
    y_train: np.ndarray
    train_index: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    val_index: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    fingerprint: str  # sha256 over the source arrays: says which data produced an artifact


# ---------------------------------------------------------------- sources


def _load_pickle(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path} is missing. A CIFAR-10 folder needs data_batch_1.. and test_batch "
                        "(the official python layout); re-extract cifar-10-python.tar.gz there.")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as err:  # pickle raises many types on garbage
        raise DataError(f"{path} is corrupt or not a CIFAR-10 batch ({type(err).__name__}: {err}). "
                        "Delete it and extract the official archive again.") from err


def read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file -> (uint8 images NHWC, int64 labels)."""
    batch = _load_pickle(path)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (KeyError, ValueError, TypeError) as err:
        raise DataError(f"{path} does not hold CIFAR-10 rows of 3072 bytes with labels ({err}). "
                        "Extract the official archive again.") from err
    if len(images) != len(labels) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels in 0..9 expected. "
                        "The file is damaged: extract the official archive again.")
    return np.ascontiguousarray(images), labels


def load_folder(folder: str | pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A `cifar-10-batches-py` folder with any number of `data_batch_N` files."""
    folder = pathlib.Path(folder).expanduser()
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 folder {folder} does not exist. Point data.folder at the extracted "
                        "cifar-10-batches-py folder, or use data.source=sample or keras.")
    batches = sorted(folder.glob("data_batch_*"), key=lambda p: int(p.name.rsplit("_", 1)[-1])
                     if p.name.rsplit("_", 1)[-1].isdigit() else 1 << 30)
    if not batches:
        raise DataError(f"{folder} has no data_batch_N files. It should be the extracted "
                        "cifar-10-batches-py folder of the official python release.")
    parts = [read_batch(p) for p in batches]
    x_test, y_test = read_batch(folder / "test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test, y_test


def load_keras() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The real download path: `keras.datasets.cifar10.load_data()`, cached under $KERAS_HOME."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as err:
        raise DataError(f"downloading CIFAR-10 through keras.datasets failed ({err}). Without network "
                        "access, extract cifar-10-python.tar.gz somewhere and use data.source=folder "
                        "with data.folder=<that>/cifar-10-batches-py, or data.source=sample.") from err
    return x_train, y_train.reshape(-1).astype(np.int64), x_test, y_test.reshape(-1).astype(np.int64)


def load_source(source: str, folder: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if source == "sample":
        return load_folder(SAMPLE_FOLDER)
    if source == "folder":
        return load_folder(folder)
    if source == "keras":
        return load_keras()
    raise DataError(f"unknown data source '{source}': use sample, folder or keras")


# ---------------------------------------------------------------- split


def fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted train and validation indices covering range(n)."""
    n_val = max(1, int(round(n * validation_fraction)))
    if n_val >= n:
        raise DataError(f"validation_fraction {validation_fraction} leaves no training images out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def load(source: str = "sample", folder: str = "", validation_fraction: float = 0.1,
         split_seed: int = 0) -> Cifar10:
    x, y, x_test, y_test = load_source(source, folder)
    train_idx, val_idx = split_indices(len(x), validation_fraction, split_seed)
    return Cifar10(
        x_train=x[train_idx], y_train=y[train_idx], train_index=train_idx,
        x_val=x[val_idx], y_val=y[val_idx], val_index=val_idx,
        x_test=x_test, y_test=y_test, class_names=CLASS_NAMES,
        fingerprint=fingerprint(x, y, x_test, y_test),
    )


def load_from_config(data_config) -> Cifar10:
    """`load` with the fields of a `config.DataConfig`."""
    return load(data_config.source, data_config.folder, data_config.validation_fraction, data_config.split_seed)
