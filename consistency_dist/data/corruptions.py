"""CIFAR-10-C: the official release, TFDS, and a built-in generator with CIFAR-10-C's constants.

Sources of corrupted test images, one interface (`corrupted(name, severity) -> images, labels`):
  * the official release folder: `<name>.npy` with 5 x N images (severity-major) and `labels.npy`;
  * TFDS `cifar10_corrupted/<name>_<severity>` when tensorflow-datasets and its data are present;
  * `generate`, which corrupts any test set with the severity constants Hendrycks & Dietterich
    used for CIFAR-10-C (not ImageNet-C's: those, used by the `imagecorruptions` package, are far
    harsher on 32x32 images, e.g. Gaussian noise sigma 0.38 vs 0.10 at severity 5).

The generator is our own numpy/scipy/Pillow code. Where the original used ImageMagick, OpenCV
or shipped textures, it differs (documented in the README): motion blur (and the streaks of
snow) is a one-sided Gaussian line kernel at a random angle; frost uses a synthesised ice
texture instead of the six photographs; spatter's water drops are drawn at the rims of the
blurred liquid layer instead of with Canny edges and distance transforms. Every corruption is
seeded, and the five severities of an image share their random draws.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
from PIL import Image
from scipy import ndimage

BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
             "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
             "jpeg_compression")
EXTRA = ("gaussian_blur", "saturate", "spatter", "speckle_noise")
ALL = BENCHMARK + EXTRA
SEVERITIES = (1, 2, 3, 4, 5)


class CorruptionError(RuntimeError):
    pass


# ---------------------------------------------------------------- helpers (float images in [0, 1])


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a (N, H, W, C) batch over H and W."""
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest")


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return ndimage.convolve(x, kernel[None, :, :, None], mode="mirror")


def _rgb_to_hsv(x):
    import matplotlib.colors

    return matplotlib.colors.rgb_to_hsv(np.clip(x, 0, 1))


def _hsv_to_rgb(x):
    import matplotlib.colors

    return matplotlib.colors.hsv_to_rgb(np.clip(x, 0, 1))


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom (N, H, W, C) into the centre by `factor`, keeping the size."""
    h = x.shape[1]
    crop = int(np.ceil(h / factor))
    top = (h - crop) // 2
    zoomed = ndimage.zoom(x[:, top:top + crop, top:top + crop], (1, factor, factor, 1), order=1)
    trim = (zoomed.shape[1] - h) // 2
    return zoomed[:, trim:trim + h, trim:trim + h]


def _line_kernel(length: float, sigma: float, angle_deg: float) -> np.ndarray:
    """A one-sided motion-blur kernel: Gaussian weights along a line at `angle_deg`."""
    size = 2 * int(np.ceil(length)) + 1
    kernel = np.zeros((size, size), np.float64)
    centre = size // 2
    steps = np.arange(0, int(np.ceil(length)) + 1)
    weights = np.exp(-(steps ** 2) / (2 * max(sigma, 1e-3) ** 2))
    dx, dy = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    for step, weight in zip(steps, weights):
        kernel[int(round(centre + step * dy)), int(round(centre + step * dx))] += weight
    return kernel / kernel.sum()


def _motion_blur_each(x: np.ndarray, length: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    return np.stack([_convolve(img[None], _line_kernel(length, sigma, a))[0] for img, a in zip(x, angles)])


def _plasma(rng: np.random.Generator, size: int = 32, decay: float = 3.0) -> np.ndarray:
    """Diamond-square fractal noise in [0, 1] (the fog layer)."""
    grid = np.zeros((size, size))
    step, wibble = size, 100.0

    def noisy_mean(total):
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = noisy_mean(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        grid[0:size:step, half:size:step] = noisy_mean(centres + np.roll(centres, 1, axis=0)
                                                       + corners + np.roll(corners, -1, axis=1))
        grid[half:size:step, 0:size:step] = noisy_mean(centres + np.roll(centres, 1, axis=1)
                                                       + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    half = 8 if radius <= 8 else int(np.ceil(radius))
    coords = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(coords, coords)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    return ndimage.gaussian_filter(disk, alias_blur, truncate=1.0 / max(alias_blur, 1e-3))


def _frost_texture(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Synthesised ice: bright, blue-white crystalline streaks on a dark ground (RGB in [0, 255])."""
    base = np.zeros((size, size))
    for _ in range(6):
        seeds = (rng.random((size, size)) > 0.93).astype(np.float64)
        angle = rng.uniform(0, 180)
        base += ndimage.convolve(seeds, _line_kernel(rng.uniform(3, 8), 3.0, angle), mode="wrap")
    base = ndimage.gaussian_filter(base, 0.6) + 0.25 * _plasma(rng, size, 2.0)
    base = np.clip(base / base.max(), 0, 1) ** 0.8
    return np.stack([base * 200, base * 225, base * 255], axis=-1)


# ---------------------------------------------------------------- the 19 corruptions


def gaussian_noise(x, s, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][s - 1]
    return x + rng.normal(scale=c, size=x.shape)


def shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return rng.poisson(x * c) / c


def impulse_noise(x, s, rng):
    c = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    out = x.copy()
    hit = rng.random(x.shape) < c
    out[hit] = (rng.random(hit.sum()) < 0.5).astype(np.float64)
    return out


def speckle_noise(x, s, rng):
    c = [0.06, 0.1, 0.12, 0.16, 0.2][s - 1]
    return x + x * rng.normal(scale=c, size=x.shape)


def gaussian_blur(x, s, rng):
    return _blur(x, [0.4, 0.6, 0.7, 0.8, 1.0][s - 1])


def glass_blur(x, s, rng):
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    x = np.floor(np.clip(_blur(x, sigma), 0, 1) * 255) / 255  # quantised, as the original
    n, size = x.shape[0], x.shape[1]
    rows = np.arange(n)
    for _ in range(iterations):
        for h in range(size - delta, delta, -1):
            for w in range(size - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(2, n))
                a, b = x[rows, h, w].copy(), x[rows, h + dy, w + dx].copy()
                x[rows, h, w], x[rows, h + dy, w + dx] = b, a
    return _blur(x, sigma)


def defocus_blur(x, s, rng):
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    return _convolve(x, _disk(radius, alias))


def motion_blur(x, s, rng):
    length, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    return _motion_blur_each(x, length, sigma, rng.uniform(-45, 45, len(x)))


def zoom_blur(x, s, rng):
    top = [1.06, 1.11, 1.16, 1.21, 1.26][s - 1]
    factors = np.arange(1, top, 0.01)
    out = np.zeros_like(x)
    for factor in factors:
        out += _clipped_zoom(x, factor)
    return (x + out) / (len(factors) + 1)


def snow(x, s, rng):
    loc, scale, zoom, threshold, length, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    n, size = x.shape[0], x.shape[1]
    layer = rng.normal(loc, scale, size=(n, size, size, 1))
    layer = _clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.clip(layer, 0, 1)
    layer = _motion_blur_each(layer, length, sigma, rng.uniform(-135, -45, n))
    gray = x @ np.array([0.299, 0.587, 0.114])
    x = keep * x + (1 - keep) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


def frost(x, s, rng):
    keep, amount = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    textures = np.stack([_frost_texture(rng, x.shape[1]) for _ in range(len(x))]) / 255.0
    return keep * x + amount * textures


def fog(x, s, rng):
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    layers = np.stack([_plasma(rng, 32, decay)[: x.shape[1], : x.shape[2]] for _ in range(len(x))])
    return (x + amount * layers[..., None]) * peak / (peak + amount)


def brightness(x, s, rng):
    hsv = _rgb_to_hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + [0.05, 0.1, 0.15, 0.2, 0.3][s - 1], 0, 1)
    return _hsv_to_rgb(hsv)


def contrast(x, s, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * c + means


def saturate(x, s, rng):
    scale, shift = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][s - 1]
    hsv = _rgb_to_hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * scale + shift, 0, 1)
    return _hsv_to_rgb(hsv)


def jpeg_compression(x, s, rng):
    quality = [80, 65, 58, 50, 40][s - 1]
    out = []
    for img in np.uint8(np.clip(x, 0, 1) * 255):
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer)))
    return np.stack(out) / 255.0


def pixelate(x, s, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    size = x.shape[1]
    small = int(size * c)
    out = []
    for img in np.uint8(np.clip(x, 0, 1) * 255):
        pil = Image.fromarray(img).resize((small, small), Image.BOX).resize((size, size), Image.BOX)
        out.append(np.asarray(pil))
    return np.stack(out) / 255.0


def elastic_transform(x, s, rng):
    size = x.shape[1]
    alpha, sigma, affine = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                            (0.1, 0.03, 0.03)][s - 1]
    alpha, sigma, affine = alpha * size, sigma * size, affine * size
    out = np.empty_like(x)
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    for i, img in enumerate(x):
        # a small random affine map (three points moved by up to `affine` pixels)
        centre, third = size // 2, size // 3
        src = np.array([[centre + third, centre + third], [centre + third, centre - third],
                        [centre - third, centre - third]], np.float64)
        dst = src + rng.uniform(-affine, affine, size=src.shape)
        matrix = np.linalg.solve(np.c_[dst, np.ones(3)], np.c_[src, np.ones(3)]).T  # dst -> src
        sy = matrix[0, 0] * yy + matrix[0, 1] * xx + matrix[0, 2]
        sx = matrix[1, 0] * yy + matrix[1, 1] * xx + matrix[1, 2]
        if alpha > 0:
            sy = sy + ndimage.gaussian_filter(rng.uniform(-1, 1, (size, size)), sigma, mode="reflect", truncate=3) * alpha
            sx = sx + ndimage.gaussian_filter(rng.uniform(-1, 1, (size, size)), sigma, mode="reflect", truncate=3) * alpha
        for c in range(x.shape[-1]):
            out[i, ..., c] = ndimage.map_coordinates(img[..., c], [sy, sx], order=1, mode="reflect")
    return out


def spatter(x, s, rng):
    loc, scale, sigma, threshold, intensity, mud = [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)][s - 1]
    n, size = x.shape[0], x.shape[1]
    liquid = ndimage.gaussian_filter(rng.normal(loc, scale, (n, size, size)), (0, sigma, sigma), mode="nearest")
    liquid[liquid < threshold] = 0
    if not mud:  # pale turquoise water drops, drawn where the liquid layer has relief (drop rims)
        shade = np.abs(ndimage.gaussian_filter(liquid, (0, 1, 1)) - liquid)
        peak = shade.max(axis=(1, 2), keepdims=True)
        shade = intensity * shade / np.where(peak > 0, peak, 1)
        water = np.array([238, 238, 175]) / 255.0
        return x + shade[..., None] * water
    mask = ndimage.gaussian_filter((liquid > threshold).astype(np.float64), (0, intensity, intensity))
    mask[mask < 0.8] = 0
    mud_colour = np.array([63, 42, 20]) / 255.0
    return x * (1 - mask[..., None]) + mask[..., None] * mud_colour


CORRUPTIONS = {name: globals()[name] for name in ALL}


def generate(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Corrupt uint8 (N, 32, 32, 3) images; deterministic for (name, severity, seed).

    The random draws (noise, angles, textures) depend on (seed, name) but not on the severity,
    so an image's five severities differ in strength only."""
    if name not in CORRUPTIONS:
        raise CorruptionError(f"unknown corruption '{name}'. Choose from: {', '.join(ALL)}")
    if severity not in SEVERITIES:
        raise CorruptionError(f"severity {severity} is not in 1..5")
    rng = np.random.default_rng([seed, ALL.index(name)])
    out = CORRUPTIONS[name](images.astype(np.float64) / 255.0, severity, rng)
    return np.uint8(np.clip(out, 0, 1) * 255)


# ---------------------------------------------------------------- the other two sources


def load_official(folder: str | pathlib.Path, name: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """One (corruption, severity) slice of the official CIFAR-10-C release folder."""
    folder = pathlib.Path(folder).expanduser()
    images_file, labels_file = folder / f"{name}.npy", folder / "labels.npy"
    for path in (images_file, labels_file):
        if not path.is_file():
            raise CorruptionError(f"{path} is missing. Point evaluate.corruption_folder at the extracted CIFAR-10-C "
                                  "folder (one <corruption>.npy per corruption plus labels.npy), or use "
                                  "evaluate.corruption_source=generate.")
    images = np.load(images_file, mmap_mode="r")
    labels = np.load(labels_file, mmap_mode="r")
    if len(images) % 5 or len(images) != len(labels) or images.shape[1:] != (32, 32, 3):
        raise CorruptionError(f"{images_file} holds {images.shape} images for {len(labels)} labels; expected "
                              "5 severities x N images of 32x32x3 and as many labels. Re-extract the release.")
    per = len(images) // 5
    rows = slice((severity - 1) * per, severity * per)
    return np.asarray(images[rows], np.uint8), np.asarray(labels[rows], np.int64)


def load_tfds(name: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """`cifar10_corrupted/<name>_<severity>` from TensorFlow Datasets (needs its prepared data)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise CorruptionError("evaluate.corruption_source=tfds needs tensorflow-datasets: `pip install "
                              "tensorflow-datasets` and prepare cifar10_corrupted, or use generate/folder.") from err
    try:
        data = tfds.as_numpy(tfds.load(f"cifar10_corrupted/{name}_{severity}", split="test", batch_size=-1,
                                       download=False))
    except Exception as err:
        raise CorruptionError(f"TFDS has no prepared cifar10_corrupted/{name}_{severity} ({err}). Run "
                              "`tfds build cifar10_corrupted` first, or use generate/folder.") from err
    return data["image"].astype(np.uint8), data["label"].astype(np.int64)
