"""CIFAR-10-C: the built-in generator, the official-folder loader, and the other source's errors."""

import numpy as np
import pytest

from consistency_dist.data import cifar10, corruptions as cc


@pytest.fixture(scope="module")
def clean():
    return cifar10.load("sample").x_test[::10][:40]  # 40 real test images, all classes


def _distortion(clean, name):
    return [np.abs(cc.generate(clean, name, s, seed=0).astype(float) - clean).mean() for s in cc.SEVERITIES]


def test_nineteen_corruptions_with_the_standard_names():
    assert len(cc.BENCHMARK) == 15 and len(cc.EXTRA) == 4 and len(set(cc.ALL)) == 19
    assert set(cc.EXTRA) == {"gaussian_blur", "saturate", "spatter", "speckle_noise"}


@pytest.mark.parametrize("name", cc.ALL)
def test_generator_is_deterministic_and_keeps_the_format(clean, name):
    a = cc.generate(clean, name, 3, seed=7)
    assert a.dtype == np.uint8 and a.shape == clean.shape
    assert np.array_equal(a, cc.generate(clean, name, 3, seed=7))
    assert not np.array_equal(a, clean)


# Constants that CIFAR-10-C itself does not make monotone in pixel distortion: elastic_transform
# weakens its affine part as severity grows; frost, glass_blur, saturate and spatter change kind
# between severities (e.g. saturate first removes colour, then amplifies it).
NOT_MONOTONE = {"elastic_transform", "frost", "glass_blur", "saturate", "spatter"}


@pytest.mark.parametrize("name", cc.ALL)
def test_distortion_grows_with_severity(clean, name):
    d = _distortion(clean, name)
    assert min(d) > 0.5, d  # every severity visibly corrupts
    if name not in NOT_MONOTONE:
        assert all(b >= a - 0.05 for a, b in zip(d, d[1:])), d
    if name != "elastic_transform":
        assert d[4] > d[0], d


def test_cifar10c_constants_not_imagenet_c(clean):
    """Gaussian noise sigma 0.10 at severity 5 (ImageNet-C's would be 0.38)."""
    gray = np.full((200, 32, 32, 3), 128, np.uint8)
    noisy = cc.generate(gray, "gaussian_noise", 5).astype(float)
    assert noisy.std() == pytest.approx(0.10 * 255, rel=0.05)


def test_official_folder_loader(tmp_path):
    rng = np.random.default_rng(0)
    per = 6
    images = rng.integers(0, 256, (5 * per, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(np.arange(per) % 10, 5).astype(np.uint8)
    np.save(tmp_path / "fog.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    got, got_labels = cc.load_official(tmp_path, "fog", 3)
    assert np.array_equal(got, images[2 * per:3 * per]) and np.array_equal(got_labels, labels[:per])
    with pytest.raises(cc.CorruptionError, match="snow.npy is missing"):
        cc.load_official(tmp_path, "snow", 1)
    np.save(tmp_path / "fog.npy", images[:-1])
    with pytest.raises(cc.CorruptionError, match="expected 5 severities"):
        cc.load_official(tmp_path, "fog", 1)


def test_tfds_source_explains_what_is_missing():
    with pytest.raises(cc.CorruptionError, match="tensorflow-datasets|tfds build cifar10_corrupted"):
        cc.load_tfds("fog", 1)


def test_unknown_corruption_and_severity():
    with pytest.raises(cc.CorruptionError, match="unknown corruption 'rain'"):
        cc.generate(np.zeros((1, 32, 32, 3), np.uint8), "rain", 1)
    with pytest.raises(cc.CorruptionError, match="severity 6"):
        cc.generate(np.zeros((1, 32, 32, 3), np.uint8), "fog", 6)
