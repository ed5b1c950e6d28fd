"""Writes the small image files tests/test_image_io.cpp reads (tests/fixtures/images/).

    /usr/bin/python3 data_tools/make_image_fixtures.py

Needs numpy and PIL (Debian: python3-numpy, python3-pil). PNGs are written by hand with zlib so
that 16-bit RGB, tRNS chunks and a lying header are possible (PIL cannot write the first); BMP,
TGA and JPEG come from PIL, so the decoder is checked against another library's files. Every
pixel value is a simple formula of its index, restated in the C++ test. Makes:

  gray16.png       5x3 16-bit gray, value i * 65535 // 14 for pixel i (row-major): 0 .. 65535
  rgb16.png        4x3 16-bit RGB, value k * 65535 // 35 for k = 3 * i + c: 0 .. 65535
  gray_trns.png    3x2 8-bit gray with a tRNS chunk making gray 64 transparent: values 32 * i,
                   so pixel 2 (value 64) decodes with alpha 0 and the rest with alpha 255
  palette_trns.png 3x2 8-bit palette (4 entries, tRNS for the first 2): pixel i uses entry i % 4
  huge.png         a valid IHDR claiming 100000x100000 8-bit RGB, with a one-row IDAT and IEND:
                   the pixel limit must refuse it from the header alone
  rgb.bmp          5x4 RGB (24-bit): r = 50 x, g = 60 y, b = 20 (x + y)
  rgb.tga          the same pixels as RLE-compressed TGA
  rgb.jpg          16x16 RGB, quality 95: r = 16 x, g = 16 y, b = 8 (x + y)
  gray.jpg         8x8 gray, quality 95: 32 x
"""
import os
import struct
import zlib

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "images")


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width, height, depth, color, rows, extra=b""):
    """A PNG from raw row bytes (no filtering: filter type 0 on every row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)

    gray16 = (np.arange(15, dtype=np.int64) * 65535 // 14).astype(">u2").reshape(3, 5)
    save("gray16.png", png(5, 3, 16, 0, [row.tobytes() for row in gray16]))

    rgb16 = (np.arange(36, dtype=np.int64) * 65535 // 35).astype(">u2").reshape(3, 12)
    save("rgb16.png", png(4, 3, 16, 2, [row.tobytes() for row in rgb16]))

    gray = (np.arange(6, dtype=np.uint8) * 32).reshape(2, 3)
    save("gray_trns.png", png(3, 2, 8, 0, [row.tobytes() for row in gray],
                              chunk(b"tRNS", struct.pack(">H", 64))))

    palette = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
    indices = (np.arange(6, dtype=np.uint8) % 4).reshape(2, 3)
    save("palette_trns.png", png(3, 2, 8, 3, [row.tobytes() for row in indices],
                                 chunk(b"PLTE", palette) + chunk(b"tRNS", bytes([0, 128]))))

    save("huge.png", png(100000, 100000, 8, 2, [bytes(3 * 100000)]))

    y, x = np.mgrid[0:4, 0:5]
    rgb = np.stack([50 * x, 60 * y, 20 * (x + y)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "rgb.bmp"))
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "rgb.tga"), compression="tga_rle")

    y, x = np.mgrid[0:16, 0:16]
    smooth = np.stack([16 * x, 16 * y, 8 * (x + y)], axis=-1).astype(np.uint8)
    Image.fromarray(smooth, "RGB").save(os.path.join(OUT, "rgb.jpg"), quality=95)
    y, x = np.mgrid[0:8, 0:8]
    Image.fromarray((32 * x).astype(np.uint8), "L").save(os.path.join(OUT, "gray.jpg"),
                                                         quality=95)


if __name__ == "__main__":
    main()
