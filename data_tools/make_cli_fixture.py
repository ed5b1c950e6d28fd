"""Writes the PyTorch reference for `deblur infer` (tests/fixtures/cli/).

    /usr/bin/python3 data_tools/make_cli_fixture.py

The reference DeblurUNet (../shared/reference/deblur_unet.py, --reference to override) gets the
deterministic weights of tests/fixtures/unet.safetensors (parameter k from fixture_uniform
stream 1000 + k; see make_fixtures.py, whose helpers this imports), and runs in float64 on a
72x40 RGB test card (input.png) the way the seed's tiled inference does, made exact:
  - out_whole.png: the image as one piece, reflection-padded at its far edges to 80x48 and
    cropped back (what --tile 0 and any tile larger than the image do);
  - out_tile32.png: tiles of 32 overlapping by 8 (starts 0, 24, 40 across and 0, 8 down, the
    last aligned to the edge), each weighted by a linear feather across the overlap on sides
    with a neighbour ((d + 0.5) / overlap at d pixels from the tile edge), accumulated and
    normalised.
Pixels: p / 127.5 - 1 in, round((clamp(y, -1, 1) + 1) * 127.5) out (halves rounded up).
"""
import argparse
import os

import numpy as np
import torch
from PIL import Image

import make_fixtures as mf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH, HEIGHT = 72, 40


def test_card():
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    r = 127.5 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = np.where((x // 8 + y // 8) % 2 == 0, 220.0, 35.0)
    b = 255.0 * (x + y) / (WIDTH + HEIGHT)
    noise = mf.fixture_uniform(7, HEIGHT * WIDTH * 3).reshape(HEIGHT, WIDTH, 3) * 30 - 15
    return np.clip(np.round(np.stack([r, g, b], -1) + noise), 0, 255).astype(np.uint8)


def load_model(reference_path):
    reference = mf.load_reference(reference_path)
    model = reference.DeblurUNet().double().eval()
    mf.set_fixture_weights(model)
    return model


def run_piece(model, piece):
    """piece: [3, h, w] in [-1, 1]; reflection-padded at the far edges to multiples of 16."""
    h, w = piece.shape[1:]
    ph, pw = -h % 16, -w % 16
    x = torch.from_numpy(np.pad(piece, ((0, 0), (0, ph), (0, pw)), mode="reflect"))[None]
    with torch.no_grad():
        return model(x)[0, :, :h, :w].numpy()


def starts(length, tile, overlap):
    if length <= tile:
        return [0]
    last = length - tile
    return list(range(0, last, tile - overlap)) + [last]


def feather(length, overlap, before, after):
    d = np.arange(length, dtype=np.float64)
    w = np.ones(length)
    if before:
        w = np.where(d < overlap, (d + 0.5) / overlap, w)
    if after:
        e = length - 1 - d
        w = np.where((e < overlap) & ~((d < overlap) & before), (e + 0.5) / overlap, w)
    return w


def run_tiled(model, image, tile, overlap):
    out = np.zeros_like(image)
    weight = np.zeros(image.shape[1:])
    xs, ys = starts(WIDTH, tile, overlap), starts(HEIGHT, tile, overlap)
    for iy, y0 in enumerate(ys):
        th = min(tile, HEIGHT)
        wy = feather(th, overlap, iy > 0, iy + 1 < len(ys))
        for ix, x0 in enumerate(xs):
            tw = min(tile, WIDTH)
            wx = feather(tw, overlap, ix > 0, ix + 1 < len(xs))
            w2 = wy[:, None] * wx[None, :]
            out[:, y0:y0 + th, x0:x0 + tw] += w2 * run_piece(model, image[:, y0:y0 + th, x0:x0 + tw])
            weight[y0:y0 + th, x0:x0 + tw] += w2
    return out / weight


def to_8bit(y):
    return np.floor((np.clip(y, -1, 1) + 1) * 127.5 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=mf.DEFAULT_REFERENCE)
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "cli"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    card = test_card()
    image = card.transpose(2, 0, 1).astype(np.float64) / 127.5 - 1
    model = load_model(args.reference)
    Image.fromarray(card).save(os.path.join(args.out, "input.png"))
    Image.fromarray(to_8bit(run_piece(model, image))).save(os.path.join(args.out, "out_whole.png"))
    Image.fromarray(to_8bit(run_tiled(model, image, 32, 8))).save(
        os.path.join(args.out, "out_tile32.png"))
    print("wrote", ", ".join(sorted(os.listdir(args.out))))


if __name__ == "__main__":
    main()
