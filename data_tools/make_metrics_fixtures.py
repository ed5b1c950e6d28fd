"""Writes the image-quality metric fixtures that tests/test_metrics.cpp checks (tests/fixtures/metrics/).

    /usr/bin/python3 data_tools/make_metrics_fixtures.py

(from the repository root; --out overrides the folder). Needs numpy, scipy, scikit-image
(Debian's python3-skimage, 0.19) and torch with pytorch_msssim 1.0.0.

Makes deterministic image pairs, each a "sharp" target (smooth shading, colour blocks, rings and
fine stripes) and a prediction halfway between it and its Gaussian blur, plus uniform noise,
both quantised to the file's bit depth:

  rgb_200x180   8-bit RGB, 200 wide x 180 high: every metric, MS-SSIM included (min side > 160)
  rgb_64x48     8-bit RGB, too small for MS-SSIM (expected "ms_ssim": null)
  gray_170x190  8-bit gray, one channel
  rgba_180x170  8-bit RGBA whose alpha differs between the two files (the metrics ignore alpha)
  rgb16_120x100 16-bit RGB (values q / 65535)

The PNGs are written by the small encoder below (zlib, "Up" row filter), so the files do not
depend on an imaging library's version. expected.json holds, per pair, the metrics computed
the standard way (the brief's "Reported metrics"), on the exact stored values mapped to [0, 1]
in float64 (p / 255 or q / 65535), alpha dropped:

  psnr     skimage.metrics.peak_signal_noise_ratio(target, pred, data_range=1)
  ssim     skimage.metrics.structural_similarity(target, pred, gaussian_weights=True, sigma=1.5,
           use_sample_covariance=False, data_range=1, channel_axis=-1) (no channel_axis for gray)
  ms_ssim  pytorch_msssim.ms_ssim(pred, target, data_range=1, size_average=True) on float64
           NCHW tensors, or null when the smaller side is <= 160 (pytorch_msssim refuses it)
  ms_ssim_double_window
           the same with its Gaussian window computed in float64 (passed as win=): pytorch_msssim
           builds the window in float32 even for float64 images, which moves MS-SSIM by ~2e-7;
           the engine's window is float64 (kernels/common/gaussian.h), so this value isolates
           everything else
"""
import argparse
import importlib.metadata
import json
import os
import struct
import zlib

import numpy as np
import pytorch_msssim
import scipy
import scipy.ndimage
import skimage
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

# name, width, height, colour channels, bits, alpha, seed
PAIRS = [
    ("rgb_200x180", 200, 180, 3, 8, False, 1),
    ("rgb_64x48", 64, 48, 3, 8, False, 2),
    ("gray_170x190", 170, 190, 1, 8, False, 3),
    ("rgba_180x170", 180, 170, 3, 8, True, 4),
    ("rgb16_120x100", 120, 100, 3, 16, False, 5),
]


def png_bytes(pixels, bits):
    """PNG file bytes for an H x W x C uint8 or uint16 array (C: 1 gray, 2 gray+alpha, 3, 4)."""
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    dtype = ">u2" if bits == 16 else "u1"  # PNG stores 16-bit samples big-endian
    raw = pixels.astype(dtype).reshape(height, -1).view(np.uint8).astype(np.int16)
    # Filter type 2 ("Up"): each byte minus the byte above it, modulo 256.
    above = np.vstack([np.zeros((1, raw.shape[1]), np.int16), raw[:-1]])
    filtered = ((raw - above) % 256).astype(np.uint8)
    scanlines = np.hstack([np.full((height, 1), 2, np.uint8), filtered]).tobytes()

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(scanlines, 9)) + chunk(b"IEND", b""))


def sharp_image(width, height, channels, seed):
    """A test card in [0, 1], H x W x C: shading, blocks, rings and stripes, varied by seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    planes = []
    for c in range(channels):
        phase = rng.uniform(0, 2 * np.pi, 2)
        value = 0.5 + 0.25 * np.sin(5 * u + phase[0]) * np.cos(4 * v + phase[1])
        blocks = ((x // 16 + 2 * (y // 16) + c) % 4) * 0.08
        value += np.where((x // 16 + y // 16) % 3 == 0, blocks, 0.0)
        r = np.hypot(u - 0.6, v - 0.4)
        value = np.where(r < 0.2, 0.5 + 0.4 * np.cos(50 * r + c), value)
        stripes = np.where((x // (1 + y % 4)) % 2 == 1, 0.85, 0.15)
        value = np.where(v > 0.8, stripes, value)
        planes.append(value)
    return np.clip(np.stack(planes, axis=-1), 0, 1)


def quantise(image, bits):
    peak = 2**bits - 1
    return np.round(np.clip(image, 0, 1) * peak).astype(np.uint16 if bits == 16 else np.uint8)


def metrics(target, pred):
    """The reference metrics of two H x W x C float64 arrays in [0, 1] (colour only)."""
    psnr = peak_signal_noise_ratio(target, pred, data_range=1)
    ssim_args = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
    if target.shape[2] == 1:
        ssim = structural_similarity(target[..., 0], pred[..., 0], **ssim_args)
    else:
        ssim = structural_similarity(target, pred, channel_axis=-1, **ssim_args)
    ms_ssim = ms_ssim_double_window = None
    if min(target.shape[:2]) > 160:
        x, y = (torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
                for a in (pred, target))
        ms_ssim = pytorch_msssim.ms_ssim(x, y, data_range=1, size_average=True).item()
        # pytorch_msssim's _fspecial_gauss_1d(11, 1.5), evaluated in float64.
        offsets = np.arange(11, dtype=np.float64) - 5
        taps = np.exp(-offsets**2 / (2 * 1.5**2))
        window = torch.from_numpy(taps / taps.sum()).reshape(1, 1, 1, 11)
        ms_ssim_double_window = pytorch_msssim.ms_ssim(
            x, y, data_range=1, size_average=True,
            win=window.repeat(target.shape[2], 1, 1, 1)).item()
    return float(psnr), float(ssim), ms_ssim, ms_ssim_double_window


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "metrics"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    pairs = []
    for name, width, height, channels, bits, alpha, seed in PAIRS:
        rng = np.random.default_rng(1000 + seed)
        sharp = sharp_image(width, height, channels, seed)
        blurred = scipy.ndimage.gaussian_filter(sharp, sigma=(1.2, 1.2, 0), mode="nearest")
        target = quantise(sharp, bits)
        # Part of the way to the blur plus noise: errors of a plausible deblurring output.
        degraded = sharp + 0.5 * (blurred - sharp) + rng.uniform(-0.02, 0.02, sharp.shape)
        pred = quantise(degraded, bits)
        peak = float(2**bits - 1)
        expected = metrics(target / peak, pred / peak)
        if alpha:
            # Opaque target; the prediction's alpha is a ramp, which must not change a metric.
            opaque = np.full((height, width, 1), 255, np.uint8)
            ramp = (np.arange(width, dtype=np.int64)[None, :, None] * 255 // (width - 1))
            target = np.concatenate([target, opaque], axis=-1)
            pred = np.concatenate([pred, np.broadcast_to(ramp, opaque.shape).astype(np.uint8)],
                                  axis=-1)
        files = {}
        for role, pixels in (("pred", pred), ("target", target)):
            files[role] = f"{name}_{role}.png"
            with open(os.path.join(args.out, files[role]), "wb") as f:
                f.write(png_bytes(pixels, bits))
        psnr, ssim, ms_ssim, ms_ssim_double_window = expected
        pairs.append({"name": name, "pred": files["pred"], "target": files["target"],
                      "width": width, "height": height, "channels": pixels.shape[2],
                      "bits": bits, "psnr": psnr, "ssim": ssim, "ms_ssim": ms_ssim,
                      "ms_ssim_double_window": ms_ssim_double_window})
        print(f"{name}: psnr {psnr:.6f} ssim {ssim:.8f} ms_ssim "
              f"{'n/a' if ms_ssim is None else f'{ms_ssim:.8f}'}")

    # Python writes floats with the shortest repr that round-trips, so no digit is lost.
    document = {
        "generator": "data_tools/make_metrics_fixtures.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__,
                     "skimage": skimage.__version__, "torch": torch.__version__,
                     "pytorch_msssim": importlib.metadata.version("pytorch_msssim")},
        "pairs": pairs,
    }
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    print(f"wrote {len(pairs)} pairs and expected.json to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
