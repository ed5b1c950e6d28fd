#!/usr/bin/env python3
"""The page deblur serve answers at GET /, in a real headless Chromium (Debian's chromium and
chromium-driver, driven through python3-selenium): choose a file, see the original and the
deblurred result, which must be byte for byte `deblur infer`'s; drop a file; a newer choice
wins over an older one still running; a bad file shows the service's error.

usage: /usr/bin/python3 test_page.py --deblur build/bin/deblur   (ctest runs it as serve.page)
"""
import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By

from harness import Context, check, png

# Reads an <img>'s blob: URL back as base64, so the test sees the exact bytes the page shows.
FETCH_BYTES = """
const [url, done] = arguments;
fetch(url).then((r) => r.arrayBuffer()).then((buffer) => {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  done(btoa(text));
}).catch((e) => done("error: " + e));
"""

# Drops a file on the drop zone as a browser does, with a DataTransfer holding it.
DROP_FILE = """
const [name, base64] = arguments;
const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, {type: "image/png"}));
document.getElementById("drop").dispatchEvent(
    new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def wait_for_state(browser, states, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        state = browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"the page stayed '{state}' for {seconds} s: "
                         f"{browser.find_element(By.ID, 'status').text!r}")


def shown_result(browser):
    """The bytes of the deblurred image the page shows, and its size as the browser decoded it."""
    result = browser.find_element(By.ID, "result")
    encoded = browser.execute_async_script(FETCH_BYTES, result.get_attribute("src"))
    check(not encoded.startswith("error"), encoded)
    size = browser.execute_script("const i = arguments[0]; return [i.naturalWidth, i.naturalHeight];",
                                  result)
    return base64.b64decode(encoded), size


def check_page(ctx, server, root, chromedriver):
    """Every check above, in one headless Chromium on the page `server` answers."""
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--user-data-dir={root}/chromium"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=ChromeService(chromedriver), options=options)
    try:
        browser.set_script_timeout(30)
        browser.get(server.url + "/")
        check(browser.title == "deblur", f"title {browser.title!r}")
        check(wait_for_state(browser, {"idle"}) == "idle", "the page did not start idle")

        # Choose a file: the original and the result appear; the result is deblur infer's.
        chosen = Path(root) / "image0.png"  # written by Context.infer
        browser.find_element(By.ID, "file").send_keys(str(chosen))
        state = wait_for_state(browser, {"done", "error"})
        status = browser.find_element(By.ID, "status").text
        check(state == "done", f"choosing a file: {status!r}")
        shown, size = shown_result(browser)
        check(shown == ctx.expected[0], "the page shows a different image than deblur infer's")
        check(size == [96, 80], f"the result is shown at {size}")
        check(browser.execute_script("return document.getElementById('original').naturalWidth")
              == 96, "the original is not shown")
        link = browser.find_element(By.ID, "download")
        check(link.is_displayed() and link.get_attribute("download") == "image0-deblurred.png"
              and link.get_attribute("href").startswith("blob:"), "no download link")
        check("Deblurred 96\u00d780" in status, f"status {status!r}")

        # Drop a file: the same, for the second image.
        browser.execute_script(DROP_FILE, "dropped.png",
                               base64.b64encode(ctx.images[1]).decode())
        check(wait_for_state(browser, {"done", "error"}) == "done",
              browser.find_element(By.ID, "status").text)
        check(shown_result(browser)[0] == ctx.expected[1], "dropped: a different image")

        # A new choice while an older one is still running: only the newest is shown,
        # even once the older answer arrives.
        slow = Path(root) / "slow.png"
        slow.write_bytes(png(512, 384, 9))
        browser.find_element(By.ID, "file").send_keys(str(slow))
        browser.execute_script(DROP_FILE, "quick.png", base64.b64encode(ctx.images[0]).decode())
        check(wait_for_state(browser, {"done", "error"}) == "done",
              browser.find_element(By.ID, "status").text)
        deadline = time.time() + 120
        while json.loads(server.get("/healthz")[2])["in_flight"] and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the older answer, if it were to be shown, has had time to be
        check(shown_result(browser)[0] == ctx.expected[0], "an older answer replaced the newer")
        check(browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done",
              "an older answer changed the state")

        # A file that is not an image: the service's JSON error, shown on the page.
        bad = Path(root) / "notes.png"
        bad.write_bytes(b"not an image at all")
        browser.find_element(By.ID, "file").send_keys(str(bad))
        check(wait_for_state(browser, {"error"}) == "error", "a bad file did not fail")
        status = browser.find_element(By.ID, "status").text
        check("not an image" in status, f"the error shown: {status!r}")
        print("PASS the page in headless Chromium: choose, drop, a newer choice, an error",
              flush=True)
    finally:
        browser.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deblur", required=True)
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deblur-page-") as root:
        ctx = Context(str(Path(args.deblur).resolve()), root, count=2)
        with ctx.server() as server:
            check_page(ctx, server, root, args.chromedriver)
    sys.exit(0)


if __name__ == "__main__":
    main()
