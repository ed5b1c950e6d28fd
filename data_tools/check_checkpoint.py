"""Checks a `deblur train` checkpoint in PyTorch: its weights load (strictly) into the reference
DeblurUNet, and that module, run on the validation pairs the way the trainer validates, gives the
PSNR and SSIM the trainer wrote into the checkpoint.

    /usr/bin/python3 data_tools/check_checkpoint.py CHECKPOINT --val DIR [--reference PATH]

Needs torch, numpy, PIL and skimage (Debian: python3-torch python3-skimage python3-pil).
The trainer's validation (train/trainer.h): each blurry image through the tiled predictor
(tiles of the configuration's val_tile, overlap clamp(val_tile / 2 - 16, 0, 64), the seed's
tiling with the last tile on the edge and a linear feather, pieces reflection-padded to multiples
of 16), output to 8 bits as round((clamp(y, -1, 1) + 1) * 127.5); PSNR (capped at 100 dB) and
SSIM (skimage, Gaussian weights, sigma 1.5, population covariance, data_range 1) against the
sharp image, averaged over the pairs. The module runs in float64; the trainer in float32, so a
few 8-bit values may round the other way: PSNR must agree within 0.05 dB and SSIM within 1e-3.
Exit code 0 when both agree, 1 otherwise.
"""
import argparse
import glob
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from skimage.metrics import structural_similarity

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_cli_fixture as cli  # noqa: E402  (the seed's tiling, made exact)
import make_fixtures as mf  # noqa: E402

PSNR_CAP, PSNR_TOL, SSIM_TOL = 100.0, 0.05, 1e-3


def pairs(root):
    """The trainer's pair order: flat (root/blur, root/sharp) or GoPro (root/<scene>/...)."""
    dirs = [root] if os.path.isdir(os.path.join(root, "blur")) else sorted(
        d for d in glob.glob(os.path.join(root, "*")) if os.path.isdir(os.path.join(d, "blur")))
    out = []
    for d in dirs:
        for blur in sorted(glob.glob(os.path.join(d, "blur", "*"))):
            out.append((blur, os.path.join(d, "sharp", os.path.basename(blur))))
    return out


def run_tiled(model, image, tile, overlap):
    """cli.run_tiled for any size (it was written for the fixture's test card)."""
    height, width = image.shape[1:]
    if tile == 0:
        return cli.run_piece(model, image)
    out = np.zeros_like(image)
    weight = np.zeros(image.shape[1:])
    xs, ys = cli.starts(width, tile, overlap), cli.starts(height, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    for iy, y0 in enumerate(ys):
        wy = cli.feather(th, overlap, iy > 0, iy + 1 < len(ys))
        for ix, x0 in enumerate(xs):
            wx = cli.feather(tw, overlap, ix > 0, ix + 1 < len(xs))
            w2 = wy[:, None] * wx[None, :]
            out[:, y0:y0 + th, x0:x0 + tw] += w2 * cli.run_piece(
                model, image[:, y0:y0 + th, x0:x0 + tw])
            weight[y0:y0 + th, x0:x0 + tw] += w2
    return out / weight


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--val", required=True, help="the validation pairs the run used")
    parser.add_argument("--reference", default=mf.DEFAULT_REFERENCE)
    args = parser.parse_args()

    with safe_open(args.checkpoint, "np") as f:
        meta = f.metadata()
        weights = {k: torch.from_numpy(f.get_tensor(k)).double() for k in f.keys()
                   if not k.startswith("optimizer.")}
    config = json.loads(meta["config"])
    reference = mf.load_reference(os.path.abspath(args.reference))
    model = reference.DeblurUNet(base=config.get("base", 32)).double().eval()
    model.load_state_dict(weights, strict=True)
    tile = config["val_tile"]
    overlap = min(max(tile // 2 - 16, 0), 64)

    psnrs, ssims = [], []
    for blur_path, sharp_path in pairs(args.val):
        blur = np.asarray(Image.open(blur_path).convert("RGB"), dtype=np.float64)
        sharp = np.asarray(Image.open(sharp_path).convert("RGB"), dtype=np.float64) / 255.0
        x = (blur / 127.5 - 1.0).transpose(2, 0, 1)
        out = cli.to_8bit(run_tiled(model, x, tile, overlap)).astype(np.float64) / 255.0
        mse = np.mean((out - sharp) ** 2)
        psnrs.append(min(PSNR_CAP, 10 * math.log10(1 / mse)) if mse > 0 else PSNR_CAP)
        ssims.append(structural_similarity(out, sharp, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=1.0,
                                           channel_axis=-1))
    psnr, ssim = float(np.mean(psnrs)), float(np.mean(ssims))
    want_psnr, want_ssim = float(meta["psnr"]), float(meta["ssim"])
    print(f"{args.checkpoint}: loads into the reference DeblurUNet (base {config.get('base', 32)}, "
          f"{len(weights)} tensors); on {len(psnrs)} validation pairs PyTorch gives PSNR "
          f"{psnr:.4f} dB (trainer: {want_psnr:.4f}), SSIM {ssim:.5f} (trainer: {want_ssim:.5f})")
    ok = abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL
    print("agree" if ok else "DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
