"""Writes tests/fixtures/train_step.safetensors, the PyTorch reference for one training step of
the trainer (train/loss.h, train/optimizer.h; checked by tests/test_train_step.cpp):

    /usr/bin/python3 data_tools/make_train_step_fixture.py [--reference PATH/deblur_unet.py]

Needs torch, pytorch_msssim and safetensors. In float64, on the reference DeblurUNet with
base 8 (8-16-32-64-128 channels; the same code as the full model, 16x fewer multiplications):
  weights    the unet.safetensors scheme (data_tools/make_fixtures.py): parameter k of
             state_dict order from stream 1000 + k
  batch      x (stream 7) and target (stream 8): float32(2u - 1) over [2, 3, 176, 176], the
             smallest side MS-SSIM accepts rounded up to a multiple of 16
  loss       the brief's CombinedLoss: p, t = clamp(pred, -1, 1), clamp(target, -1, 1);
             0.84 * (1 - clamp(ms_ssim((p + 1) / 2, (t + 1) / 2, data_range=1), 0, 1))
             + 0.16 * mean(sqrt((p - t)^2 + 1e-6)); and the seed's form (ms_ssim(p, t,
             data_range=2)) for --seed_msssim
  step       loss.backward(); clip_grad_norm_(max_norm=1.0); AdamW(lr=2e-4, betas=(0.9, 0.999),
             eps=1e-8, weight_decay=1e-4).step(); then the loss again on the same batch

Stored: the loss terms before and after the step and the global gradient norm as repr()
strings in the metadata (exact float64), and per parameter grad.<name>.norm and
grad.<name>.sample (values at flat indices floor(j * numel / m), m = min(numel, 64)) as F32.
"""
import argparse
import os
import sys

import torch
from pytorch_msssim import ms_ssim
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures as mf  # noqa: E402  (the shared RNG scheme and reference loader)

BASE, BATCH, SIDE = 8, 2, 176
X_STREAM, TARGET_STREAM = 7, 8
ALPHA, BETA = 0.84, 0.16
LR, BETAS, EPS, WEIGHT_DECAY, MAX_NORM = 2e-4, (0.9, 0.999), 1e-8, 1e-4, 1.0
SAMPLES = 64


def combined_loss(pred, target, seed_form=False):
    p, t = pred.clamp(-1, 1), target.clamp(-1, 1)
    if seed_form:
        similarity = ms_ssim(p, t, data_range=2.0)
    else:
        similarity = ms_ssim((p + 1) / 2, (t + 1) / 2, data_range=1.0)
    structure = 1 - similarity.clamp(0, 1)
    charbonnier = torch.sqrt((p - t) ** 2 + 1e-6).mean()
    return ALPHA * structure + BETA * charbonnier, structure, charbonnier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(mf.REPO, "tests", "fixtures",
                                                      "train_step.safetensors"))
    parser.add_argument("--reference", default=mf.DEFAULT_REFERENCE)
    args = parser.parse_args()
    reference = mf.load_reference(os.path.abspath(args.reference))

    model = reference.DeblurUNet(base=BASE).double()
    mf.set_fixture_weights(model)
    n = BATCH * 3 * SIDE * SIDE
    shape = (BATCH, 3, SIDE, SIDE)
    x = torch.from_numpy(mf.fixture_symmetric(X_STREAM, n, 1.0)).double().reshape(shape)
    target = torch.from_numpy(mf.fixture_symmetric(TARGET_STREAM, n, 1.0)).double().reshape(shape)

    pred = model(x)
    loss, structure, charbonnier = combined_loss(pred, target)
    seed_loss, seed_structure, _ = combined_loss(pred.detach(), target, seed_form=True)
    loss.backward()
    params = dict(model.named_parameters())
    tensors = {}
    for name, p in params.items():
        idx = torch.tensor([j * p.numel() // min(p.numel(), SAMPLES)
                            for j in range(min(p.numel(), SAMPLES))], dtype=torch.int64)
        tensors[f"grad.{name}.norm"] = p.grad.norm().reshape(1).float()
        tensors[f"grad.{name}.sample"] = p.grad.reshape(-1)[idx].float()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS,
                            weight_decay=WEIGHT_DECAY, foreach=False)
    opt.step()
    with torch.no_grad():
        loss_after, _, _ = combined_loss(model(x), target)

    meta = {
        "format": "deblur train step fixture v1 (data_tools/make_train_step_fixture.py)",
        "base": str(BASE), "x_stream": str(X_STREAM), "target_stream": str(TARGET_STREAM),
        "shape": str(list(shape)),
        "loss": repr(loss.item()), "structure": repr(structure.item()),
        "charbonnier": repr(charbonnier.item()),
        "seed_loss": repr(seed_loss.item()), "seed_structure": repr(seed_structure.item()),
        "grad_norm": repr(grad_norm.item()), "loss_after": repr(loss_after.item()),
    }
    save_file(tensors, args.out, metadata=meta)
    mf.canonicalize_header(args.out)
    print(f"{args.out}: {len(tensors)} tensors, {os.path.getsize(args.out):,} bytes")
    for key in ("loss", "structure", "charbonnier", "seed_loss", "grad_norm", "loss_after"):
        print(f"  {key} = {meta[key]}")


if __name__ == "__main__":
    main()
