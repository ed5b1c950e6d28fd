"""Writes tests/fixtures/adamw.safetensors, the PyTorch reference for the AdamW + clipping +
cosine schedule kernels (kernels/cpu/adamw.h, checked by tests/test_adamw.cpp):

    /usr/bin/python3 data_tools/make_optimizer_fixture.py --out tests/fixtures/adamw.safetensors

Needs torch and safetensors. Two parameter tensors p0 [7] and p1 [13] take 4 optimizer steps in
float64, each step:
    torch.nn.utils.clip_grad_norm_([p0, p1], max_norm=1.0)
    torch.optim.AdamW(lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4).step()
    torch.optim.lr_scheduler.CosineAnnealingLR(T_max=4, eta_min=1e-6).step()
The gradients of steps 1 and 3 have global norms 3 and 2 (clipped), of steps 2 and 4 norms 0.5
and 0.2 (not clipped).

The C++ engine reads only float32 tensors, so every input is made exactly representable: the
initial parameters and the gradients are float32 values (computed on in float64). Each step's
update delta = p_after - p_before (float64) is stored rounded to float32, which keeps ~7 digits
of the update itself (weight decay's lr * wd * p is ~1e-4 of it, still visible). The exact
float64 scalars travel as repr() strings in the metadata: lr.<k> (the lr step k used, read
before the scheduler steps), norm.<k> (clip_grad_norm_'s returned total norm) and clip.<k>
(its scale min(1, max_norm / (norm + 1e-6))), for k = 1..4.

Tensors: p0.init, p1.init, step<k>.grad.p0/p1, step<k>.delta.p0/p1 (all F32).
"""
import argparse

import torch
from safetensors.torch import save_file

MAX_NORM = 1.0
LR, BETAS, EPS, WEIGHT_DECAY = 2e-4, (0.9, 0.999), 1e-8, 1e-4
T_MAX, ETA_MIN = 4, 1e-6
GRAD_NORMS = [3.0, 0.5, 2.0, 0.2]  # clipped, not, clipped, not
SIZES = {"p0": 7, "p1": 13}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/adamw.safetensors")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(20261125)
    init = {name: (torch.rand(n, generator=gen, dtype=torch.float32) * 2 - 1)
            for name, n in SIZES.items()}
    params = {name: torch.nn.Parameter(t.to(torch.float64)) for name, t in init.items()}
    tensors = {f"{name}.init": t for name, t in init.items()}
    meta = {"format": "pt", "source": "data_tools/make_optimizer_fixture.py"}

    opt = torch.optim.AdamW(params.values(), lr=LR, betas=BETAS, eps=EPS,
                            weight_decay=WEIGHT_DECAY, foreach=False)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_MAX, eta_min=ETA_MIN)

    for k, target_norm in enumerate(GRAD_NORMS, start=1):
        raw = {name: torch.randn(n, generator=gen, dtype=torch.float64) for name, n in SIZES.items()}
        total = torch.sqrt(sum((g * g).sum() for g in raw.values()))
        grads = {name: (g * (target_norm / total)).to(torch.float32) for name, g in raw.items()}
        before = {name: p.detach().clone() for name, p in params.items()}
        for name, p in params.items():
            p.grad = grads[name].to(torch.float64)
            tensors[f"step{k}.grad.{name}"] = grads[name]
        lr = opt.param_groups[0]["lr"]
        norm = float(torch.nn.utils.clip_grad_norm_(params.values(), max_norm=MAX_NORM))
        opt.step()
        sched.step()
        for name, p in params.items():
            tensors[f"step{k}.delta.{name}"] = (p.detach() - before[name]).to(torch.float32)
        meta[f"lr.{k}"] = repr(lr)
        meta[f"norm.{k}"] = repr(norm)
        meta[f"clip.{k}"] = repr(min(1.0, MAX_NORM / (norm + 1e-6)))
        print(f"step {k}: lr {lr!r} norm {norm!r} clip {meta[f'clip.{k}']}")

    save_file({name: t.contiguous() for name, t in tensors.items()}, args.out, metadata=meta)


if __name__ == "__main__":
    main()
