"""Makes the bundled samples: samples/sharp.png, samples/blurry.png (mild camera shake) and
samples/blurry_strong.png (strong camera shake).

    /usr/bin/python3 data_tools/make_sample.py

The sharp image is a 384x288 crop of scikit-image's "astronaut" photograph (Eileen Collins,
NASA, public domain; Debian's python3-skimage ships it). The blurry one is the same crop blurred
by a random camera-shake trajectory (a momentum random walk rasterised into a 17x17 kernel, the
kind of blur GoPro-style datasets average from shifted frames), plus Gaussian sensor noise of
sigma 2/255, rounded to 8 bits. The strong one is the same crop under a 31x31 kernel of the same
kind, applied to linear intensities (sRGB decoded, blurred, encoded) as a camera integrates light
and as deblur's training blur does (train/synthetic_blur.h), plus the same noise. Everything is
seeded: rerunning gives the same files.
"""
import os

import numpy as np
from scipy.ndimage import convolve
from skimage import data
from skimage.io import imsave

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 2026
KERNEL = 17
STRONG_KERNEL = 31


def shake_kernel(rng, size=KERNEL, steps=400):
    """A camera-shake point-spread function: the path of a random walk with momentum, splatted
    bilinearly into a size x size grid and normalised to sum 1."""
    kernel = np.zeros((size, size))
    pos = np.zeros(2)
    vel = rng.normal(size=2)
    vel /= np.linalg.norm(vel)
    path = []
    for _ in range(steps):
        vel = 0.97 * vel + 0.25 * rng.normal(size=2)
        vel /= max(1.0, np.linalg.norm(vel))
        pos = pos + 0.05 * vel
        path.append(pos.copy())
    path = np.array(path)
    path -= path.mean(axis=0)
    span = np.abs(path).max()
    path *= (size // 2 - 1) / max(span, 1e-9)
    for y, x in path + size // 2:
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                kernel[y0 + dy, x0 + dx] += wy * wx
    return kernel / kernel.sum()


def srgb_to_linear(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v):
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def to_8bit(image):
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(SEED)
    sharp = data.astronaut()[0:288, 64:448].astype(np.float64) / 255.0
    kernel = shake_kernel(rng)
    blurry = np.stack([convolve(sharp[..., c], kernel, mode="reflect") for c in range(3)], -1)
    blurry += rng.normal(scale=2.0 / 255.0, size=blurry.shape)
    out = os.path.join(REPO, "samples")
    os.makedirs(out, exist_ok=True)
    imsave(os.path.join(out, "sharp.png"), np.round(sharp * 255).astype(np.uint8))
    imsave(os.path.join(out, "blurry.png"), to_8bit(blurry))
    # Drawn after blurry.png's kernel and noise, so that file stays as it was first made.
    strong_kernel = shake_kernel(rng, size=STRONG_KERNEL)
    linear = srgb_to_linear(sharp)
    strong = linear_to_srgb(
        np.stack([convolve(linear[..., c], strong_kernel, mode="reflect") for c in range(3)], -1))
    strong += rng.normal(scale=2.0 / 255.0, size=strong.shape)
    imsave(os.path.join(out, "blurry_strong.png"), to_8bit(strong))
    print("wrote samples/sharp.png, samples/blurry.png and samples/blurry_strong.png, 384x288")


if __name__ == "__main__":
    main()
