"""Times the reference PyTorch DeblurUNet: the numbers our GPU (and CPU) targets rest on.

    python3 bench/torch_reference.py [--reference PATH/deblur_unet.py] [--device cuda|cpu]
                                     [--repeats 10] [--json OUT.json]

Measures, in one process and one run: inference on a 2048x2048 image (whole, batch 1) and one
training step (forward, an L1 loss standing in for the seed's, backward, clipping, AdamW) at
batch 24 x 256x256, each in float32, TF32 (CUDA only) and bfloat16 autocast. Times are the
median of --repeats after warm-up, from CUDA events on the GPU; peak memory from
torch.cuda.max_memory_allocated. Prints a table and, with --json, writes the numbers.
FLOP counts are the U-Net's convolution MACs x 2 (about 1.05 TMAC per 2048x2048 forward); a
training step counts 3x the forward.
"""
import argparse
import importlib.util
import json
import os
import statistics
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_REFERENCE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "reference",
                                 "deblur_unet.py")


def load_reference(path):
    spec = importlib.util.spec_from_file_location("deblur_unet_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conv_macs(model, height, width):
    """Multiply-accumulates of the convolutions for one image, counted with forward hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * module.in_channels * k // output.shape[0]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    for h in handles:
        h.remove()
    return total


def timed(fn, device, repeats):
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=DEFAULT_REFERENCE)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--infer_size", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--json")
    args = parser.parse_args()

    reference = load_reference(args.reference)
    device = args.device
    macs_infer = conv_macs(reference.DeblurUNet(), args.infer_size, args.infer_size)
    macs_patch = conv_macs(reference.DeblurUNet(), args.patch, args.patch)
    # CPU autocast to bf16 breaks GroupNorm in older torch (1.13): fp32 only there.
    modes = ["fp32", "tf32", "bf16"] if device == "cuda" else ["fp32"]
    info = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__, "threads": torch.get_num_threads(), "results": []}
    print(f"# {info['device']}, torch {info['torch']}")
    print(f"{'case':<34} {'mode':<5} {'seconds':>9} {'TFLOP/s':>8} {'peak MiB':>9}")
    for mode in modes:
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            torch.backends.cudnn.allow_tf32 = mode == "tf32"
        autocast = torch.autocast(device_type=device, dtype=torch.bfloat16,
                                  enabled=mode == "bf16")
        torch.manual_seed(0)
        model = reference.DeblurUNet().to(device)
        image = torch.rand(1, 3, args.infer_size, args.infer_size, device=device) * 2 - 1

        def infer():
            with torch.no_grad(), autocast:
                model(image)

        batch = torch.rand(args.batch, 3, args.patch, args.patch, device=device) * 2 - 1
        target = torch.rand_like(batch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = (model(batch) - target).abs().mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

        for name, fn, flops in (
                (f"inference {args.infer_size}x{args.infer_size}", infer, 2 * macs_infer),
                (f"train step {args.batch}x{args.patch}x{args.patch}", train_step,
                 6 * macs_patch * args.batch)):
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = timed(fn, device, args.repeats)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
            print(f"{name:<34} {mode:<5} {seconds:>9.4f} {flops / seconds / 1e12:>8.2f} "
                  f"{peak:>9.0f}")
            info["results"].append({"case": name, "mode": mode, "seconds": seconds,
                                    "tflops": flops / seconds / 1e12, "peak_mib": peak})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
