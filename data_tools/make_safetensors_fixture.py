# Writes tests/fixtures/safetensors_dtypes.safetensors with Python's own safetensors package, so
# the C++ reader (engine/safetensors.cpp) is checked against files the reference tooling makes.
# Made with (from the repository root):
#   /usr/bin/python3 data_tools/make_safetensors_fixture.py
# The values are simple formulas so tests/test_safetensors.cpp can state them exactly; every one
# is exactly representable in its dtype.
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "safetensors_dtypes.safetensors")


def main():
    tensors = {
        # F32, rank 4 (an OIHW conv weight): (i - 12) / 8 for i in 0..23.
        "conv.weight": ((torch.arange(24, dtype=torch.float32) - 12) / 8).reshape(2, 3, 2, 2),
        # F32, rank 1.
        "conv.bias": torch.tensor([0.5, -1.25], dtype=torch.float32),
        # F16, rank 2: i * 0.25 - 1 for i in 0..5, plus a subnormal and the largest finite half.
        "half.matrix": (torch.arange(6, dtype=torch.float32) * 0.25 - 1).reshape(2, 3)
                       .to(torch.float16),
        "half.special": torch.tensor([2.0**-24, 65504.0, -0.0, float("inf")],
                                     dtype=torch.float16),
        # BF16, rank 1: 2^i - 3 for i in 0..4, and a rank-0 scalar.
        "bf16.vector": (torch.pow(2.0, torch.arange(5, dtype=torch.float32)) - 3)
                       .to(torch.bfloat16),
        "bf16.scalar": torch.tensor(-3.5, dtype=torch.bfloat16),
    }
    save_file(tensors, OUT, metadata={"format": "pt", "note": "deblur dtype fixture"})
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
