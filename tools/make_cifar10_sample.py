"""Build the bundled CIFAR-10 sample from a folder in the official python layout.

Why: tests and the quickstart must run on real images without any download, and a user's
clone has no shared data folder, so a small real sample ships inside the package.

    python tools/make_cifar10_sample.py ../shared/data/cifar10-subset/cifar-10-batches-py

takes the first 200 training and 50 test images of each class (in file order) and writes
`consistency_dist/data/cifar10_sample/cifar-10-batches-py/` in the same official layout.
"""

import argparse
import pathlib
import pickle

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "consistency_dist/data/cifar10_sample/cifar-10-batches-py"


def _first_per_class(batch: dict, per_class: int) -> np.ndarray:
    labels = np.asarray(batch[b"labels"])
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    return np.sort(np.concatenate(picks))


def _write(batch: dict, rows: np.ndarray, name: str, label: str) -> None:
    out = {
        b"batch_label": label.encode(),
        b"labels": [int(batch[b"labels"][i]) for i in rows],
        b"data": np.ascontiguousarray(batch[b"data"][rows]),
        b"filenames": [batch[b"filenames"][i] for i in rows],
    }
    with open(OUT / name, "wb") as f:
        pickle.dump(out, f, protocol=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=pathlib.Path, help="folder holding data_batch_1, test_batch, batches.meta")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with open(args.source / "data_batch_1", "rb") as f:
        train = pickle.load(f, encoding="bytes")
    with open(args.source / "test_batch", "rb") as f:
        test = pickle.load(f, encoding="bytes")
    _write(train, _first_per_class(train, args.train_per_class), "data_batch_1",
           f"bundled sample: first {args.train_per_class}/class of the shared CIFAR-10 subset")
    _write(test, _first_per_class(test, args.test_per_class), "test_batch",
           f"bundled sample: first {args.test_per_class}/class of the shared CIFAR-10 test subset")
    (OUT / "batches.meta").write_bytes((args.source / "batches.meta").read_bytes())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
