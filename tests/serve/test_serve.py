#!/usr/bin/env python3
"""deblur serve over real HTTP on 127.0.0.1: round trips equal to `deblur infer`, every limit and
error, a full queue, concurrent clients with no cross-talk, stalled uploads that hold no worker,
the page, /healthz and /metrics, a graceful SIGTERM with requests in flight, and a small load
run with nothing lost or mixed up.

usage: test_serve.py --deblur build/bin/deblur [-k NAME]   (Python standard library only; ctest
runs it as serve.http)
"""
import argparse
import http.client
import json
import re
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
import zlib
from pathlib import Path

from harness import Context, check, load_run, png


def error_of(body):
    answer = json.loads(body)
    check(isinstance(answer.get("error"), str) and answer["error"], f"no error text: {body!r}")
    return answer["error"]


def metric(text, name):
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def send_together(server, images):
    """Deblur requests for `images`, each from a thread of its own, all started; the threads and
    the dict their answers land in, by index."""
    results = {}

    def client(i):
        results[i] = server.deblur(images[i])
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    return threads, results


def join_all(threads, results):
    for thread in threads:
        thread.join()
    return results


# --- the tests ------------------------------------------------------------------------------

def test_round_trip(ctx):
    """PNG and JPEG answers, equal to deblur infer's output, with timing headers."""
    with ctx.server() as server:
        status, headers, body = server.deblur(ctx.images[0])
        check(status == 200 and headers["Content-Type"] == "image/png", f"{status} {headers}")
        check(body == ctx.expected[0], "the answer differs from deblur infer's output")
        for name in ("X-Deblur-Upload-Ms", "X-Deblur-Queue-Ms", "X-Deblur-Decode-Ms",
                     "X-Deblur-Inference-Ms", "X-Deblur-Encode-Ms", "Server-Timing"):
            check(name in headers, f"no {name} header: {headers}")
        for path, accept, jpeg in (("/v1/deblur?format=jpeg", None, True),
                                   ("/v1/deblur", "image/png;q=0.5, image/jpeg", True),
                                   ("/v1/deblur", "image/*;q=0.8, image/png", False),
                                   ("/v1/deblur", "image/jpeg;q=0, image/png", False),
                                   ("/v1/deblur", "*/*", False)):
            status, headers, body = server.deblur(ctx.images[0], path,
                                                  {"Accept": accept} if accept else {})
            check(status == 200 and (headers["Content-Type"] == "image/jpeg" and
                                     body[:3] == b"\xff\xd8\xff" if jpeg else body == ctx.expected[0]),
                  f"{path} Accept: {accept}: {status} {headers}")
        status, _, body = server.get("/healthz")
        health = json.loads(body)
        check(status == 200 and health["status"] == "ok" and health["model_loaded"] is True and
              health["max_pixels"] == 4096 * 4096 and health["max_body_bytes"] == 50 << 20,
              f"healthz: {body!r}")
        status, headers, body = server.get("/")
        check(status == 200 and headers["Content-Type"].startswith("text/html") and
              b'<input id="file" type="file"' in body and "Content-Security-Policy" in headers,
              f"GET /: {status} {headers}")


def png_header_only(width, height):
    """A PNG signature and IHDR claiming width x height, and nothing after: a service that
    decoded before checking the pixel count would answer 400 (truncated), not 413."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr +
            struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF))


def raw_post(server, head, body=b""):
    """POST /v1/deblur with hand-made headers (`head`, one per line) and body bytes; the answer
    as (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as connection:
        connection.sendall(b"POST /v1/deblur HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body)
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, dict(answer.getheaders()), answer.read()


def chunked(data, size=4096):
    return b"".join(b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n"
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def test_limits_and_errors(ctx):
    """Each bad request gets its status and a JSON error; the service keeps serving."""
    with ctx.server("--max_body_mb", "1", "--max_pixels", "10000") as server:
        over_limit = b"\0" * (3 << 19)
        cases = [
            ("body over --max_body_mb", server.request(
                "POST", "/v1/deblur", over_limit, {"Content-Type": "application/octet-stream"}),
             413, "limit"),
            ("chunked body over --max_body_mb", raw_post(
                server, b"Transfer-Encoding: chunked\r\n", chunked(over_limit)), 413, "limit"),
            ("a body with neither a length nor chunks", raw_post(
                server, b"Connection: close\r\n", ctx.images[0]), 411, "Content-Length"),
            ("pixels over --max_pixels", server.deblur(png(200, 100, 1)), 413, "pixels"),
            ("a header claiming 10^10 pixels", server.deblur(png_header_only(100000, 100000)),
             413, "100000x100000"),
            ("GIF", server.deblur(b"GIF89a" + bytes(64)), 400, "unsupported image format GIF"),
            ("not an image", server.deblur(b"hello, world"), 400, "not an image"),
            ("truncated PNG", server.deblur(ctx.images[1][: len(ctx.images[1]) // 2]), 400, ""),
            ("empty body", server.deblur(b""), 400, "empty"),
            ("bad format", server.deblur(ctx.images[0], "/v1/deblur?format=gif"), 400, "format"),
            ("a multipart form", server.request(
                "POST", "/v1/deblur", b"--x\r\n\r\n" + ctx.images[0] + b"\r\n--x--\r\n",
                {"Content-Type": "multipart/form-data; boundary=x"}), 400, "curl -F"),
            ("unknown path", server.get("/v2/nothing"), 404, "/v1/deblur"),
        ]
        for name, (status, headers, body), expected, words in cases:
            check(status == expected, f"{name}: {status}, expected {expected}: {body[:200]!r}")
            check(headers.get("Content-Type") == "application/json", f"{name}: {headers}")
            check(words in error_of(body), f"{name}: {body!r} does not say '{words}'")
        # Bodies sent any way HTTP allows, within the limit: each answered as deblur infer does.
        good = [
            ("with a length", server.deblur(ctx.images[0])),
            ("form-encoded (curl --data-binary's default type)", server.request(
                "POST", "/v1/deblur", ctx.images[0],
                {"Content-Type": "application/x-www-form-urlencoded"})),
            ("chunked", raw_post(server, b"Transfer-Encoding: chunked\r\n",
                                 chunked(ctx.images[0]))),
        ]
        for name, (status, _, body) in good:
            check(status == 200 and body == ctx.expected[0], f"a good request {name}: {status}")
        _, _, text = server.get("/metrics")
        text = text.decode()
        check(metric(text, 'deblur_requests_total{status="400"}') == 6 and
              metric(text, 'deblur_requests_total{status="411"}') == 1 and
              metric(text, 'deblur_requests_total{status="413"}') == 4 and
              metric(text, 'deblur_requests_total{status="200"}') == 3,
              f"requests by status:\n{text}")
        check(metric(text, "deblur_pixels_processed_total") == 3 * 96 * 80, f"pixels:\n{text}")
        check(metric(text, 'deblur_request_duration_seconds_bucket{le="+Inf"}') ==
              metric(text, "deblur_request_duration_seconds_count") == 14, f"histogram:\n{text}")


def test_timeouts(ctx):
    """An upload that drips past --upload_timeout: 408; a request past --process_timeout: 503
    with Retry-After. Neither affects the next request."""
    with ctx.server("--upload_timeout", "1", "--read_timeout", "5",
                    "--process_timeout", "0.05") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            image = ctx.images[0]
            connection.sendall(b"POST /v1/deblur HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                               % len(image))
            answer = b""
            for i in range(0, len(image), 64):  # 64 bytes every 0.25 s: never a 5 s stall
                try:
                    connection.sendall(image[i:i + 64])
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.25)
                connection.setblocking(False)
                try:
                    answer = connection.recv(4096)
                except BlockingIOError:
                    pass
                finally:
                    connection.setblocking(True)
                if answer:
                    break
            check(answer.startswith(b"HTTP/1.1 408") and b"longer than 1 s" in answer,
                  f"a dripping upload got {answer[:200]!r}")
        status, headers, body = server.deblur(png(512, 512, 5))
        check(status == 503 and headers.get("Retry-After") == "1" and
              "processing took longer than 0.05 s" in error_of(body), f"{status} {body[:200]!r}")


def test_full_queue_and_no_cross_talk(ctx):
    """Concurrent clients each get their own image back; past workers + queue, 503 at once."""
    with ctx.server("--workers", "2", "--queue", "8") as server:
        results = join_all(*send_together(server, [ctx.images[i % 4] for i in range(8)]))
        for i in range(8):
            status, _, body = results[i]
            check(status == 200 and body == ctx.expected[i % 4], f"client {i}: {status}, "
                  f"{'its own image' if body == ctx.expected[i % 4] else 'another answer'}")

    big = png(512, 512, 7)
    with ctx.server("--workers", "1", "--queue", "1") as server:
        results = join_all(*send_together(server, [big] * 5))
        statuses = sorted(status for status, _, _ in results.values())
        check(len(results) == 5 and statuses.count(200) >= 2 and 503 in statuses and
              set(statuses) <= {200, 503}, f"statuses {statuses}")
        for status, headers, body in results.values():
            if status == 503:
                check(headers.get("Retry-After") == "1" and "busy" in error_of(body), f"{headers}")


def test_stalled_uploads_hold_no_worker(ctx):
    """Clients that stop mid-upload, more of them than workers + queue, hold no worker and do not
    keep a good request waiting; each is answered 408 after --read_timeout."""
    with ctx.server("--workers", "1", "--queue", "0", "--read_timeout", "6") as server:
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
        for connection in stalled:  # each answered, then closed
            connection.settimeout(30)
            rest = b""
            while chunk := connection.recv(4096):
                rest += chunk
            check(rest.startswith(b"HTTP/1.1 408") and b"stalled for 6 s" in rest,
                  f"a stalled client got {rest[:200]!r}")
            connection.close()
        waited = time.time() - start
        check(waited < 25, f"the stalled connections were held {waited:.1f} s, not about 6")


def test_graceful_sigterm(ctx):
    """SIGTERM: requests already in are answered, then the process exits 0 and stops listening."""
    big = png(512, 512, 3)
    server = ctx.server("--workers", "1", "--queue", "2")
    threads, results = send_together(server, [big] * 2)
    deadline = time.time() + 30
    while time.time() < deadline:  # both in: one running, one queued
        health = json.loads(server.get("/healthz")[2])
        if health["in_flight"] == 1 and health["queue_depth"] == 1:
            break
        time.sleep(0.02)
    else:
        server.process.kill()
        raise AssertionError(f"never one running and one queued: {health}")
    rc, out = server.stop()
    join_all(threads, results)
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
    with ctx.server("--workers", "2", "--queue", "8") as server:
        result = load_run(server, ctx.images, ctx.expected, clients=6, requests=24, max_seconds=120)
        print(json.dumps(result), flush=True)
        check(result["requests_sent"] == 24 and result["statuses"] == {"200": 24} and
              not result["lost"] and not result["mixed_up"], f"load run: {result}")
        _, _, text = server.get("/metrics")
        check(metric(text.decode(), 'deblur_requests_total{status="200"}') == 24, text.decode())


TESTS = [test_round_trip, test_limits_and_errors, test_timeouts, test_full_queue_and_no_cross_talk,
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
