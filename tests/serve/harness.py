"""Helpers shared by the deblur serve tests (test_serve.py, test_page.py) and the load run
(bench/serve_load.py): test images, a `deblur serve` process on a free loopback port, and what
`deblur infer` answers for the same bytes. Python standard library only.
"""
import http.client
import math
import re
import select
import signal
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path


def png(width, height, seed):
    """An RGB PNG of a smooth pattern with edges, different for each seed (stdlib only)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes(((x * (3 + seed) + y * 5) % 256, (x * y // (7 + seed)) % 256,
                           255 if (x // 8 + y // 8 + seed) % 2 else 40))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b""))


def check(condition, message):
    if not condition:
        raise AssertionError(message)


class Server:
    """`deblur serve --model MODEL EXTRA...` on a free 127.0.0.1 port, up once /healthz answers."""

    def __init__(self, deblur, model, *extra):
        # --port 0: the server takes a free port and names it in its first line, so no other
        # test can take the port between our choosing it and the server binding it.
        self.process = subprocess.Popen(
            [deblur, "serve", "--model", str(model), "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.port = None
        deadline = time.time() + 60
        while self.port is None:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0, deadline - time.time()))
            line = self.process.stdout.readline() if ready else ""
            if not line:
                self.process.kill()
                raise AssertionError(f"deblur serve did not start: {self.process.communicate()[0]}")
            match = re.search(r" on http://[^:]+:(\d+)$", line.strip())
            if match:
                self.port = int(match.group(1))
        check(self.get("/healthz")[0] == 200, "no /healthz")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=120):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            connection.close()

    def get(self, path):
        return self.request("GET", path)

    def deblur(self, image, path="/v1/deblur", headers=None):
        return self.request("POST", path, image, {"Content-Type": "image/png", **(headers or {})})

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, trace):
        """Stops the server; a test that passed also needs it to have exited 0."""
        rc, out = self.stop()
        if error_type is None:
            check(rc == 0, f"exit {rc}:\n{out}")

    def stop(self):
        """SIGTERM, then the exit status and everything the server printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=120)
        return self.process.returncode, out


class Context:
    """A model (MODEL, or an untrained one from `deblur demo`) in ROOT, `count` test images of
    different sizes, and `deblur infer`'s answer for each."""

    def __init__(self, deblur, root, model=None, count=4, threads=2):
        self.deblur = deblur
        self.root = Path(root)
        self.threads = threads
        if model is None:
            model = self.root / "model.safetensors"
            subprocess.run([deblur, "demo", "--size", "176", "--save", str(model)], check=True,
                           capture_output=True)
        self.model = Path(model)
        self.images = [png(96 + 16 * (i % 8), 80 + 8 * (i // 8), i) for i in range(count)]
        self.expected = [self.infer(image, f"image{i}") for i, image in enumerate(self.images)]

    def server(self, *extra):
        return Server(self.deblur, self.model, "--threads", str(self.threads), *extra)

    def infer(self, image, name):
        """`deblur infer` on the same bytes: what the service must answer."""
        source, output = self.root / f"{name}.png", self.root / f"{name}-out.png"
        source.write_bytes(image)
        subprocess.run([self.deblur, "infer", "--model", str(self.model), "--input", str(source),
                        "--output", str(output), "--threads", str(self.threads)], check=True,
                       capture_output=True)
        return output.read_bytes()


def percentile(sorted_values, fraction):
    """The value below which `fraction` of the sorted values lie (nearest rank)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def load_run(server, images, expected, clients, requests, max_seconds):
    """`clients` threads send `requests` deblur requests in all (request i sends image
    i % len(images)), none sent after `max_seconds`. Every answer is checked against `expected`:
    a request is lost when it got no answer or a status other than 200 and 503, mixed up when its
    200 answer is not its own image's. Returns the counts, throughput and latency percentiles."""
    lock = threading.Lock()
    next_request = [0]
    latencies, statuses, lost, mixed = [], {}, [], []
    pixels = [0]
    deadline = time.perf_counter() + max_seconds

    def client():
        while True:
            with lock:
                i = next_request[0]
                if i >= requests or time.perf_counter() > deadline:
                    return
                next_request[0] += 1
            start = time.perf_counter()
            try:
                status, _, body = server.deblur(images[i % len(images)])
            except OSError as error:
                with lock:
                    lost.append(f"request {i}: {error}")
                continue
            elapsed = time.perf_counter() - start
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(elapsed)
                    pixels[0] += png_pixels(images[i % len(images)])
                    if body != expected[i % len(images)]:
                        mixed.append(i)
                elif status != 503:
                    lost.append(f"request {i}: HTTP {status} {body[:120]!r}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    latencies.sort()
    sent = next_request[0]
    return {
        "clients": clients, "requests_sent": sent, "answered": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "lost": lost, "mixed_up": mixed, "wall_s": round(wall, 3),
        "requests_per_s": round(statuses.get(200, 0) / wall, 3),
        "megapixels_per_s": round(pixels[0] / 1e6 / wall, 4),
        "latency_ms": {name: round(1000 * percentile(latencies, q), 1)
                       for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
    }


def png_size(png_bytes):
    """(width, height) from a PNG's IHDR."""
    return struct.unpack(">II", png_bytes[16:24])


def png_pixels(png_bytes):
    width, height = png_size(png_bytes)
    return width * height
