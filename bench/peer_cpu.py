"""Ours against PyTorch on the same CPU cores, in one run: times, ratios and peak RSS.

    python3 bench/peer_cpu.py [--bin build/bin] [--threads 2] [--repeats 3] [--rounds 1]
                              [--train_batch 4] [--torch_python PY]
                              [--cases infer512,tiled2048,train]
                              [--json bench/results/peer_cpu-DATE.json]

Every case runs in a process of its own, ours and PyTorch's alike, so each peak RSS (from
wait4's rusage) is that case's alone; both sides get the same thread count (--threads: our
--threads, torch.set_num_threads). The reference module is ../shared/reference/deblur_unet.py
(--reference), in float32 with PyTorch's default initialisation on both sides (our model file
comes from `deblur demo --save`, the same initialisation; speed does not depend on the values).

  infer512   one 512x512 image, whole, no autograd. Ours: deblur_model_timing --inference 512
             (median of --repeats after a warm-up); PyTorch: model(x) under no_grad, likewise.
  tiled2048  a 2048x2048 PNG deblurred end to end: decode, tiles of 512 overlapping by 64 with
             the seed's linear feather, stitch, encode. Ours: `deblur infer` (the whole process,
             model load included); PyTorch: the same steps with numpy and PIL, timed after
             `import torch`. One run each (each takes tens of seconds on 2 cores).
  train      forward, Charbonnier loss and backward at --train_batch x 256x256 (the optimizer is
             left out on both sides). Ours: deblur_model_timing --train; PyTorch likewise.

Each case runs --rounds times, ours then PyTorch in turn, so that a machine whose speed drifts
over minutes (a shared VM) slows both sides alike. Prints one line per case: the medians of both
times, the median of the rounds' ratios ours/PyTorch (each round's ratio compares runs next to
each other in time), both peak RSS (the largest over the rounds) and every round's ratio; --json
writes them, each round's numbers too, with the date, host, CPU, thread count, commit and
PyTorch version.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_REFERENCE = os.path.join(os.path.dirname(REPO), "shared", "reference", "deblur_unet.py")
TILE, OVERLAP = 512, 64


# --- the PyTorch side, run as `peer_cpu.py --torch_case CASE ...` in its own process

def torch_case(args):
    import importlib.util

    import numpy as np
    import torch
    from PIL import Image

    if args.torch_case == "make_image":
        # A 2048x2048 PNG: the bundled sample tiled (a photo, not noise).
        sample = Image.open(os.path.join(REPO, "samples", "blurry.png")).convert("RGB")
        canvas = Image.new("RGB", (2048, 2048))
        for y in range(0, 2048, sample.height):
            for x in range(0, 2048, sample.width):
                canvas.paste(sample, (x, y))
        canvas.save(args.output)
        return

    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("deblur_unet_reference", args.reference)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    torch.manual_seed(0)
    model = reference.DeblurUNet().float()

    def median_time(fn):
        fn()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    if args.torch_case == "infer512":
        model.eval()
        x = torch.rand(1, 3, 512, 512) * 2 - 1
        with torch.no_grad():
            seconds = median_time(lambda: model(x))
    elif args.torch_case == "train":
        model.train()
        x = torch.rand(args.train_batch, 3, 256, 256) * 2 - 1
        target = torch.rand(args.train_batch, 3, 256, 256) * 2 - 1

        def step():
            model.zero_grad(set_to_none=True)
            loss = torch.sqrt((model(x) - target) ** 2 + 1e-6).mean()
            loss.backward()

        seconds = median_time(step)
    else:  # tiled2048
        model.eval()
        start = time.perf_counter()
        image = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(image.transpose(2, 0, 1).copy()) / 127.5 - 1
        height, width = x.shape[1:]

        def starts(length):
            if length <= TILE:
                return [0]
            return list(range(0, length - TILE, TILE - OVERLAP)) + [length - TILE]

        def feather(length, before, after):
            d = torch.arange(length, dtype=torch.float32)
            w = torch.ones(length)
            if before:
                w = torch.where(d < OVERLAP, (d + 0.5) / OVERLAP, w)
            if after:
                e = length - 1 - d
                w = torch.where((e < OVERLAP) & ~((d < OVERLAP) & before), (e + 0.5) / OVERLAP, w)
            return w

        out = torch.zeros_like(x)
        weight = torch.zeros(height, width)
        ys, xs = starts(height), starts(width)
        with torch.no_grad():
            for iy, y0 in enumerate(ys):
                wy = feather(TILE, iy > 0, iy + 1 < len(ys))
                for ix, x0 in enumerate(xs):
                    wx = feather(TILE, ix > 0, ix + 1 < len(xs))
                    w2 = wy[:, None] * wx[None, :]
                    y = model(x[None, :, y0:y0 + TILE, x0:x0 + TILE])[0]
                    out[:, y0:y0 + TILE, x0:x0 + TILE] += w2 * y
                    weight[y0:y0 + TILE, x0:x0 + TILE] += w2
        pixels = ((out / weight).clamp(-1, 1) + 1) * 127.5 + 0.5
        Image.fromarray(pixels.floor().byte().permute(1, 2, 0).numpy()).save(args.output)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "torch": torch.__version__}))


# --- the driver

def run_measured(command):
    """Runs command; returns (stdout, wall seconds, peak RSS in MiB) of that process alone."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage, not cumulative
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"peer_cpu: {' '.join(command)} failed ({process.returncode}):\n{err.read()}")
        return out.read(), wall, usage.ru_maxrss / 1024.0


def ours_model_timing(args, inference, train, label):
    out, _, rss = run_measured([os.path.join(args.bin, "deblur_model_timing"), "--device", "cpu",
                                "--threads", str(args.threads), "--repeats", str(args.repeats),
                                "--inference", inference, "--train", train])
    for line in out.splitlines():
        if line.startswith(label):
            return float(line.split()[len(label.split())]), rss
    sys.exit(f"peer_cpu: no '{label}' line in deblur_model_timing's output:\n{out}")


def torch_measured(args, case, extra=()):
    out, _, rss = run_measured([args.torch_python, os.path.abspath(__file__), "--torch_case", case,
                                "--threads", str(args.threads), "--repeats", str(args.repeats),
                                "--train_batch", str(args.train_batch), "--reference",
                                args.reference, *extra])
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], rss, result["torch"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(REPO, "build", "bin"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--train_batch", type=int, default=4)
    parser.add_argument("--torch_python", default=sys.executable)
    parser.add_argument("--reference", default=DEFAULT_REFERENCE)
    parser.add_argument("--cases", default="infer512,tiled2048,train")
    parser.add_argument("--json")
    parser.add_argument("--torch_case", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_case:
        return torch_case(args)

    cases = args.cases.split(",")
    results, torch_version = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            if case == "infer512":
                ours_fn = lambda: ours_model_timing(args, "512", "none", "inference 512x512")
                theirs_fn = lambda: torch_measured(args, case)
            elif case == "train":
                ours_fn = lambda: ours_model_timing(args, "none", f"{args.train_batch}x256",
                                                    f"train step {args.train_batch}x256x256")
                theirs_fn = lambda: torch_measured(args, case)
            elif case == "tiled2048":
                image, model = os.path.join(tmp, "in2048.png"), os.path.join(tmp, "model.safetensors")
                run_measured([args.torch_python, os.path.abspath(__file__), "--torch_case",
                              "make_image", "--output", image])
                run_measured([os.path.join(args.bin, "deblur"), "demo", "--size", "176", "--save", model])

                def ours_fn():
                    _, seconds, rss = run_measured(
                        [os.path.join(args.bin, "deblur"), "infer", "--model", model, "--input",
                         image, "--output", os.path.join(tmp, "ours.png"), "--tile", str(TILE),
                         "--overlap", str(OVERLAP), "--threads", str(args.threads)])
                    return seconds, rss

                theirs_fn = lambda: torch_measured(
                    args, case, ["--image", image, "--output", os.path.join(tmp, "torch.png")])
            else:
                sys.exit(f"peer_cpu: unknown case '{case}'")
            # Rounds alternate the two sides, so that a machine whose speed drifts over minutes
            # (a shared VM) slows both alike; each round's ratio compares neighbours in time.
            rounds = []
            for _ in range(args.rounds):
                ours, ours_rss = ours_fn()
                theirs, theirs_rss, torch_version = theirs_fn()
                rounds.append({"ours_s": ours, "torch_s": theirs, "ours_over_torch": ours / theirs,
                               "ours_peak_rss_mib": ours_rss, "torch_peak_rss_mib": theirs_rss})
            ratio = statistics.median(r["ours_over_torch"] for r in rounds)
            round_ratios = ", ".join(f"{r['ours_over_torch']:.2f}" for r in rounds)
            ours = statistics.median(r["ours_s"] for r in rounds)
            theirs = statistics.median(r["torch_s"] for r in rounds)
            ours_rss = max(r["ours_peak_rss_mib"] for r in rounds)
            theirs_rss = max(r["torch_peak_rss_mib"] for r in rounds)
            results.append({"case": case, "ours_s": ours, "torch_s": theirs,
                            "ours_over_torch": ratio, "ours_peak_rss_mib": ours_rss,
                            "torch_peak_rss_mib": theirs_rss, "rounds": rounds})
            print(f"{case:10s} ours {ours:8.3f} s  PyTorch {theirs:8.3f} s  ours/PyTorch "
                  f"{ratio:5.2f}  peak RSS ours {ours_rss:7.0f} MiB, PyTorch "
                  f"{theirs_rss:7.0f} MiB  (ratio by round: {round_ratios})", flush=True)

    commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty", "--abbrev=12"],
                            capture_output=True, text=True).stdout.strip()
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        match = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
        cpu = match.group(1) if match else ""
    report = {"date": datetime.date.today().isoformat(), "host": platform.node(), "cpu": cpu,
              "threads": args.threads, "repeats": args.repeats, "rounds": args.rounds,
              "train_batch": args.train_batch,
              "commit": commit, "torch": torch_version, "results": results}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
