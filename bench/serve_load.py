#!/usr/bin/env python3
"""A bounded load run against `deblur serve` on 127.0.0.1: a fixed number of requests from a fixed
number of clients, stopped after a fixed time. Reports throughput and latency percentiles, and
checks every answer against `deblur infer` on the same image, so a lost, refused (503) or
mixed-up request is an error (exit 1), not a statistic.

usage: bench/serve_load.py --deblur build/bin/deblur [--model M.safetensors] [--clients 8]
           [--requests 200] [--max_seconds 300] [--workers 2] [--queue 16] [--threads N]
           [--images 8] [--json bench/results/serve_load-DATE.json]

Without --model it serves an untrained model from `deblur demo` (the same work per pixel as a
trained one). Python's standard library only.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "serve"))
from harness import Context, load_run, png_size  # noqa: E402


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deblur", required=True)
    parser.add_argument("--model")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max_seconds", type=float, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--images", type=int, default=8, help="distinct test images, 96x80 up")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deblur-load-") as root:
        ctx = Context(str(Path(args.deblur).resolve()), root, model=args.model,
                      count=args.images, threads=args.threads)
        server = ctx.server("--workers", str(args.workers), "--queue", str(args.queue))
        try:
            result = load_run(server, ctx.images, ctx.expected, args.clients, args.requests,
                              args.max_seconds)
        finally:
            rc, out = server.stop()
    result.update({
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs",
        "commit": git_commit(), "workers": args.workers, "queue": args.queue,
        "threads": args.threads, "model": args.model or "untrained (deblur demo)",
        "image_sizes": ["%dx%d" % png_size(image) for image in ctx.images], "server_exit": rc,
    })
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    lost, mixed = len(result["lost"]), len(result["mixed_up"])
    refused = result["statuses"].get("503", 0)
    if lost or mixed or refused or rc != 0 or result["requests_sent"] != args.requests:
        print(f"serve_load: {lost} lost, {mixed} mixed up, {refused} refused (503: give "
              f"--queue at least --clients), {result['requests_sent']} of {args.requests} sent, "
              f"server exit {rc}:\n{out}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
