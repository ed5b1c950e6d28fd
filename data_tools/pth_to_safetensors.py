"""Converts a PyTorch DeblurUNet checkpoint (.pth) to the safetensors file deblur loads.

    /usr/bin/python3 data_tools/pth_to_safetensors.py best_model.pth model.safetensors [--f16]

Accepts a bare state_dict or the seed's checkpoint dict (its 'model_state_dict', or a
'state_dict'), strips DataParallel's "module." prefixes, and checks every name and shape against
the reference module (../shared/reference/deblur_unet.py, --reference to override) before
writing, so a wrong file fails here with a list of what differs rather than later in deblur.
The seed's epoch, psnr and ssim, when present, go into the file's metadata. Needs torch and the
safetensors package. Writes to a temporary file and renames it, so no partial output is left.
"""
import argparse
import importlib.util
import os
import sys

import torch
from safetensors.torch import save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFERENCE = os.path.join(os.path.dirname(REPO), "shared", "reference", "deblur_unet.py")


def reference_shapes(path):
    spec = importlib.util.spec_from_file_location("deblur_unet_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {k: tuple(v.shape) for k, v in module.DeblurUNet().state_dict().items()}


def extract_state(checkpoint, source):
    if isinstance(checkpoint, dict):
        for key in ("model_state_dict", "state_dict"):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                return checkpoint[key], checkpoint
        if all(torch.is_tensor(v) for v in checkpoint.values()):
            return checkpoint, {}
    sys.exit(f"{source}: not a state_dict or a checkpoint with 'model_state_dict'")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="the .pth file")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--f16", action="store_true", help="store float16 (half the size)")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE,
                        help="path to deblur_unet.py (the reference module)")
    args = parser.parse_args()

    try:
        checkpoint = torch.load(args.input, map_location="cpu")
    except Exception as e:  # torch raises many kinds for a corrupt file
        sys.exit(f"{args.input}: cannot be read as a PyTorch file ({e})")
    state, extra = extract_state(checkpoint, args.input)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}

    expected = reference_shapes(args.reference)
    problems = [f"missing {k} {list(s)}" for k, s in expected.items() if k not in state]
    problems += [f"unexpected {k} {list(v.shape)}" for k, v in state.items() if k not in expected]
    problems += [f"{k} has shape {list(state[k].shape)}, the model needs {list(s)}"
                 for k, s in expected.items() if k in state and tuple(state[k].shape) != s]
    if problems:
        sys.exit(f"{args.input}: state does not match DeblurUNet ({len(problems)} problems):\n  "
                 + "\n  ".join(problems))

    dtype = torch.float16 if args.f16 else torch.float32
    tensors = {k: state[k].detach().to(dtype).contiguous() for k in expected}
    metadata = {"format": "pt", "source": os.path.basename(args.input)}
    for key in ("epoch", "psnr", "ssim"):
        if key in extra:
            metadata[key] = str(extra[key])
    tmp = f"{args.output}.tmp-{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"{args.output}: {len(tensors)} tensors, "
          f"{sum(t.numel() for t in tensors.values()):,} parameters, {str(dtype)[6:]}")


if __name__ == "__main__":
    main()
