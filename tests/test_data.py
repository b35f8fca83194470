import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from consistency_dist.data import cifar10


def _write_batch(path, images, labels):
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": list(map(int, labels)), b"batch_label": b"t",
                     b"filenames": [b"x"] * len(labels)}, f, protocol=4)


@pytest.fixture
def official_folder(tmp_path):
    """A miniature folder in the official python layout with three training batches."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = []
    for i in range(1, 4):
        images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, 7)
        _write_batch(folder / f"data_batch_{i}", images, labels)
        batches.append((images, labels))
    test_images, test_labels = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 5)
    _write_batch(folder / "test_batch", test_images, test_labels)
    return folder, batches, (test_images, test_labels)


def test_bundled_sample_is_real_balanced_cifar10():
    data = cifar10.load("sample")
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (32, 32, 3)
    assert len(data.x_train) + len(data.x_val) == 2000 and len(data.x_test) == 500
    assert np.bincount(data.y_test).tolist() == [50] * 10
    assert np.bincount(np.concatenate([data.y_train, data.y_val])).tolist() == [200] * 10
    assert 60 < data.x_train.mean() < 200 and data.x_train.std() > 30  # natural images, not noise or blanks
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"


def test_folder_source_reads_any_number_of_batches_in_order(official_folder):
    folder, batches, (test_images, test_labels) = official_folder
    x, y, x_test, y_test = cifar10.load_folder(folder.parent)  # the parent of cifar-10-batches-py works too
    assert np.array_equal(x, np.concatenate([b[0] for b in batches]))
    assert np.array_equal(y, np.concatenate([b[1] for b in batches]))
    assert np.array_equal(x_test, test_images) and np.array_equal(y_test, test_labels)


def test_split_is_seeded_disjoint_and_complete():
    train, val = cifar10.split_indices(1000, 0.1, seed=3)
    assert len(val) == 100 and not set(train) & set(val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(1000))
    again, _ = cifar10.split_indices(1000, 0.1, seed=3)
    other, _ = cifar10.split_indices(1000, 0.1, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    data = cifar10.load("sample", validation_fraction=0.2, split_seed=5)
    assert not set(data.train_index) & set(data.val_index) and len(data.x_val) == 400


def test_corrupt_and_missing_data_give_clear_errors(official_folder, tmp_path):
    folder, _, _ = official_folder
    (folder / "data_batch_2").write_bytes(b"this is not a pickle")
    with pytest.raises(cifar10.DataError, match="data_batch_2 is corrupt or not a CIFAR-10 batch"):
        cifar10.load_folder(folder)
    (folder / "data_batch_2").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(cifar10.DataError, match="test_batch is missing"):
        cifar10.load_folder(folder)
    with pytest.raises(cifar10.DataError, match="does not exist"):
        cifar10.load_folder(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(cifar10.DataError, match="no data_batch_N files"):
        cifar10.load_folder(empty)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(cifar10.DataError, match="rows of 3072 bytes"):
        cifar10.load_folder(folder)


def test_keras_source_runs_the_real_download_and_explains_offline_failure(tmp_path):
    """keras.datasets.cifar10.load_data() really runs; with the network cut (a closed local proxy),
    the failure becomes an error that names the offline alternatives."""
    env = dict(os.environ, KERAS_HOME=str(tmp_path), https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    code = ("from consistency_dist.data import cifar10\n"
            "try:\n    cifar10.load('keras')\nexcept cifar10.DataError as e:\n    print('DATAERROR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "Downloading data from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in proc.stdout
    assert "DATAERROR downloading CIFAR-10 through keras.datasets failed" in proc.stdout
    assert "data.source=folder" in proc.stdout
    assert not list((tmp_path / "datasets").glob("*_archive"))  # nothing half-downloaded left behind


@pytest.mark.skipif(not os.path.isdir(os.path.expanduser("~/.keras/datasets/cifar-10-batches-py-target")),
                    reason="no cached full CIFAR-10 download on this machine")
def test_keras_source_with_a_cached_download():
    data = cifar10.load("keras")
    assert len(data.x_train) + len(data.x_val) == 50000 and len(data.x_test) == 10000


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-subset")


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="the shared CIFAR-10 subset is not beside this checkout")
def test_shared_subset_through_the_folder_source():
    data = cifar10.load("folder", folder=SHARED)
    assert len(data.x_train) + len(data.x_val) == 10000 and len(data.x_test) == 2000
