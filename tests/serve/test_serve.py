#!/usr/bin/env python3
"""deblur serve over real HTTP on 127.0.0.1: round trips equal to `deblur infer`, every limit and
error, a full queue, concurrent clients with no cross-talk, stalled uploads that hold no worker,
the page, /healthz and /metrics, a graceful SIGTERM with requests in flight, and a small load
run with nothing lost or mixed up.

usage: test_serve.py --deblur build/bin/deblur [-k NAME]   (Python standard library only; ctest
runs it as serve.http)
"""
import argparse
import json
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from harness import Context, check, load_run, png


def error_of(body):
    answer = json.loads(body)
    check(isinstance(answer.get("error"), str) and answer["error"], f"no error text: {body!r}")
    return answer["error"]


def metric(text, name):
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# --- the tests ------------------------------------------------------------------------------

def test_round_trip(ctx):
    """PNG and JPEG answers, equal to deblur infer's output, with timing headers."""
    server = ctx.server()
    try:
        status, headers, body = server.deblur(ctx.images[0])
        check(status == 200 and headers["Content-Type"] == "image/png", f"{status} {headers}")
        check(body == ctx.expected[0], "the answer differs from deblur infer's output")
        for name in ("X-Deblur-Queue-Ms", "X-Deblur-Decode-Ms", "X-Deblur-Inference-Ms",
                     "X-Deblur-Encode-Ms", "Server-Timing"):
            check(name in headers, f"no {name} header: {headers}")
        for path, extra in (("/v1/deblur?format=jpeg", {}),
                            ("/v1/deblur", {"Accept": "image/jpeg, image/png;q=0.5"})):
            status, headers, body = server.deblur(ctx.images[0], path, extra)
            check(status == 200 and headers["Content-Type"] == "image/jpeg" and
                  body[:3] == b"\xff\xd8\xff", f"JPEG by {path} {extra}: {status} {headers}")
        status, _, body = server.get("/healthz")
        health = json.loads(body)
        check(status == 200 and health["status"] == "ok" and health["model_loaded"] is True and
              health["max_pixels"] == 4096 * 4096 and health["max_body_bytes"] == 50 << 20,
              f"healthz: {body!r}")
        status, headers, body = server.get("/")
        check(status == 200 and headers["Content-Type"].startswith("text/html") and
              b'<input id="file" type="file"' in body and "Content-Security-Policy" in headers,
              f"GET /: {status} {headers}")
    finally:
        rc, out = server.stop()
        check(rc == 0, f"exit {rc}:\n{out}")


def test_limits_and_errors(ctx):
    """Each bad request gets its status and a JSON error; the service keeps serving."""
    server = ctx.server("--max_body_mb", "1", "--max_pixels", "10000")
    try:
        cases = [
            ("body over --max_body_mb", server.request(
                "POST", "/v1/deblur", b"\0" * (3 << 19), {"Content-Type": "application/octet-stream"}),
             413, "limit"),
            ("pixels over --max_pixels", server.deblur(png(200, 100, 1)), 413, "pixels"),
            ("GIF", server.deblur(b"GIF89a" + bytes(64)), 400, "unsupported image format GIF"),
            ("not an image", server.deblur(b"hello, world"), 400, "not an image"),
            ("truncated PNG", server.deblur(ctx.images[1][: len(ctx.images[1]) // 2]), 400, ""),
            ("empty body", server.deblur(b""), 400, "empty"),
            ("bad format", server.deblur(ctx.images[0], "/v1/deblur?format=gif"), 400, "format"),
            ("form-encoded body", server.request(
                "POST", "/v1/deblur", ctx.images[0] * 2,
                {"Content-Type": "application/x-www-form-urlencoded"}), 413, "Content-Type"),
            ("unknown path", server.get("/v2/nothing"), 404, "/v1/deblur"),
        ]
        for name, (status, headers, body), expected, words in cases:
            check(status == expected, f"{name}: {status}, expected {expected}: {body[:200]!r}")
            check(headers.get("Content-Type") == "application/json", f"{name}: {headers}")
            check(words in error_of(body), f"{name}: {body!r} does not say '{words}'")
        status, _, body = server.deblur(ctx.images[0])
        check(status == 200 and body == ctx.expected[0], "a good request after the bad ones")
        _, _, text = server.get("/metrics")
        text = text.decode()
        check(metric(text, 'deblur_requests_total{status="400"}') == 5 and
              metric(text, 'deblur_requests_total{status="413"}') == 3 and
              metric(text, 'deblur_requests_total{status="200"}') == 1,
              f"requests by status:\n{text}")
        check(metric(text, "deblur_pixels_processed_total") == 96 * 80, f"pixels:\n{text}")
        # Seven reached the handler; httplib refused the body over the limit and the form before it.
        check(metric(text, 'deblur_request_duration_seconds_bucket{le="+Inf"}') ==
              metric(text, "deblur_request_duration_seconds_count") == 7, f"histogram:\n{text}")
    finally:
        rc, out = server.stop()
        check(rc == 0, f"exit {rc}:\n{out}")


def test_full_queue_and_no_cross_talk(ctx):
    """Concurrent clients each get their own image back; past workers + queue, 503 at once."""
    server = ctx.server("--workers", "2", "--queue", "8")
    try:
        results = {}

        def client(i):
            results[i] = server.deblur(ctx.images[i % 4])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(8):
            status, _, body = results[i]
            check(status == 200 and body == ctx.expected[i % 4], f"client {i}: {status}, "
                  f"{'its own image' if body == ctx.expected[i % 4] else 'another answer'}")
    finally:
        rc, out = server.stop()
        check(rc == 0, f"exit {rc}:\n{out}")

    big = png(512, 512, 7)
    server = ctx.server("--workers", "1", "--queue", "1")
    try:
        results = {}

        def client(i):
            results[i] = server.deblur(big)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(status for status, _, _ in results.values())
        check(len(results) == 5 and statuses.count(200) >= 2 and 503 in statuses and
              set(statuses) <= {200, 503}, f"statuses {statuses}")
        for status, headers, body in results.values():
            if status == 503:
                check(headers.get("Retry-After") == "1" and "busy" in error_of(body), f"{headers}")
    finally:
        rc, out = server.stop()
        check(rc == 0, f"exit {rc}:\n{out}")


def test_stalled_uploads_hold_no_worker(ctx):
    """Clients that stop mid-upload, more of them than workers + queue, hold no worker and do not
    keep a good request waiting; each is dropped after --read_timeout."""
    server = ctx.server("--workers", "1", "--queue", "0", "--read_timeout", "3")
    try:
        stalled = []
        for _ in range(12):
            connection = socket.create_connection(("127.0.0.1", server.port))
            connection.sendall(b"POST /v1/deblur HTTP/1.1\r\nHost: x\r\nContent-Type: image/png"
                               b"\r\nContent-Length: 100000\r\n\r\n" + ctx.images[0][:100])
            stalled.append(connection)
        start = time.time()
        status, _, body = server.deblur(ctx.images[2])  # the one worker is free
        check(status == 200 and body == ctx.expected[2], f"{status} while uploads stall")
        for connection in stalled:  # answered while every stalled upload is still open
            connection.setblocking(False)
            try:
                check(False, f"a stalled upload ended first: {connection.recv(4096)[:80]!r}")
            except BlockingIOError:
                pass
        for connection in stalled:
            connection.settimeout(30)
            try:
                rest = connection.recv(4096)
            except ConnectionResetError:
                rest = b""
            check(rest == b"" or rest.startswith(b"HTTP/1.1 4"),
                  f"a stalled client got {rest[:80]!r}")
            connection.close()
        waited = time.time() - start
        check(waited < 20, f"the stalled connections were held {waited:.1f} s, not about 3")
    finally:
        rc, out = server.stop()
        check(rc == 0, f"exit {rc}:\n{out}")


def test_graceful_sigterm(ctx):
    """SIGTERM: requests already in are answered, then the process exits 0 and stops listening."""
    big = png(512, 512, 3)
    server = ctx.server("--workers", "1", "--queue", "2")
    results = {}

    def client(i):
        results[i] = server.deblur(big)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while time.time() < deadline:  # both in: one running, one queued
        health = json.loads(server.get("/healthz")[2])
        if health["in_flight"] + health["queue_depth"] == 2:
            break
        time.sleep(0.02)
    rc, out = server.stop()
    for t in threads:
        t.join()
    check(rc == 0, f"exit {rc}:\n{out}")
    check(sorted(status for status, _, _ in results.values()) == [200, 200],
          f"in-flight requests: {[r[0] for r in results.values()]}")
    check("finishing the requests in progress" in out and "stopped" in out, out)
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        raise AssertionError("still listening after SIGTERM")
    except ConnectionRefusedError:
        pass


def test_load_run(ctx):
    """A bounded load run (bench/serve_load.py's, small): every request answered 200 with its own
    image, none lost or mixed up."""
    server = ctx.server("--workers", "2", "--queue", "8")
    try:
        result = load_run(server, ctx.images, ctx.expected, clients=6, requests=24, max_seconds=120)
        print(json.dumps(result), flush=True)
        check(result["requests_sent"] == 24 and result["statuses"] == {"200": 24} and
              not result["lost"] and not result["mixed_up"], f"load run: {result}")
        _, _, text = server.get("/metrics")
        check(metric(text.decode(), 'deblur_requests_total{status="200"}') == 24, text.decode())
    finally:
        rc, out = server.stop()
        check(rc == 0, f"exit {rc}:\n{out}")


TESTS = [test_round_trip, test_limits_and_errors, test_full_queue_and_no_cross_talk,
         test_stalled_uploads_hold_no_worker, test_graceful_sigterm, test_load_run]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deblur", required=True)
    parser.add_argument("-k", default="")
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="deblur-serve-") as root:
        ctx = Context(str(Path(args.deblur).resolve()), root)
        for test in TESTS:
            if args.k not in test.__name__:
                continue
            start = time.time()
            try:
                test(ctx)
                print(f"PASS {test.__name__} ({time.time() - start:.1f} s)", flush=True)
            except Exception:
                failures += 1
                print(f"FAIL {test.__name__}\n{traceback.format_exc()}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
