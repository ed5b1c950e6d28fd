"""Makes the bundled sample pair: samples/sharp.png and samples/blurry.png.

    /usr/bin/python3 data_tools/make_sample.py

The sharp image is a 384x288 crop of scikit-image's "astronaut" photograph (Eileen Collins,
NASA, public domain; Debian's python3-skimage ships it). The blurry one is the same crop blurred
by a random camera-shake trajectory (a momentum random walk rasterised into a 17x17 kernel, the
kind of blur GoPro-style datasets average from shifted frames), plus Gaussian sensor noise of
sigma 2/255, rounded to 8 bits. Everything is seeded: rerunning gives the same files.
"""
import os

import numpy as np
from scipy.ndimage import convolve
from skimage import data
from skimage.io import imsave

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 2026
KERNEL = 17


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


def main():
    rng = np.random.default_rng(SEED)
    sharp = data.astronaut()[0:288, 64:448].astype(np.float64) / 255.0
    kernel = shake_kernel(rng)
    blurry = np.stack([convolve(sharp[..., c], kernel, mode="reflect") for c in range(3)], -1)
    blurry += rng.normal(scale=2.0 / 255.0, size=blurry.shape)
    out = os.path.join(REPO, "samples")
    os.makedirs(out, exist_ok=True)
    imsave(os.path.join(out, "sharp.png"), np.round(sharp * 255).astype(np.uint8))
    imsave(os.path.join(out, "blurry.png"),
           np.round(np.clip(blurry, 0, 1) * 255).astype(np.uint8))
    print("wrote samples/sharp.png and samples/blurry.png, 384x288")


if __name__ == "__main__":
    main()
