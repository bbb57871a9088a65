"""A small headless-Chromium driver over the DevTools protocol, for the browser tests:
Debian's `chromium` and `websockets` (a Prefect dependency) instead of a 161 MB playwright.

    with Chromium() as browser:
        page = browser.open("file:///.../report.html")  # returns after the load event
        page.evaluate("document.images.length")          # a JSON value (promises awaited)
        page.screenshot("shot.png")                       # the full page
        page.problems   # console errors and warnings, uncaught exceptions, log errors (CSP...)
        page.requests   # every URL the page requested
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any

from websockets.sync.client import connect

# Off the network and quiet: no first-run pages, updates, sync or background requests
# (docs/screenshot.py launches Chromium with these too).
OFFLINE_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
FLAGS = [*OFFLINE_FLAGS, "--remote-debugging-port=0", "--remote-allow-origins=*"]


class CDPError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab: what it logged and requested since it was opened."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session
        self.problems: list[str] = []
        self.requests: list[str] = []

    def send(self, method: str, **params: Any) -> dict:
        return self.browser.send(method, params, session=self.session)

    def on_event(self, method: str, p: dict) -> None:
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.problems.append(f"console.{p['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = p["exceptionDetails"]
            self.problems.append(f"exception: {details.get('text', '')} {details.get('exception', {})}")
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            self.problems.append(f"log.{p['entry']['level']}: {p['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])

    def evaluate(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise CDPError(r["exceptionDetails"].get("text"))
        return r["result"].get("value")

    def screenshot(self, path: str, width: int = 1280, full_page: bool = True) -> None:
        if full_page:
            height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
            self.send(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))


class Chromium:
    """A headless Chromium process and its DevTools connection (a context manager)."""

    def __init__(
        self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60
    ) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise CDPError("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
        self.exe, self.size, self.timeout = exe, (width, height), timeout
        self._ids = itertools.count(1)
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="cdp-profile-")
        self.proc = subprocess.Popen(
            [self.exe, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={self.size[0]},{self.size[1]}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            self.ws = connect(self._devtools_url(), max_size=None, open_timeout=self.timeout)
        except BaseException:
            self._stop()
            raise
        return self

    def _devtools_url(self) -> str:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise CDPError(f"chromium exited with status {self.proc.returncode}")
            if m := re.search(r"DevTools listening on (ws://\S+)", line):
                return m.group(1)
        raise CDPError("chromium did not print its DevTools address")

    def __exit__(self, *exc: object) -> None:
        try:
            self.ws.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while True:
            event = self._receive(deadline)
            if event.get("id") == msg_id:
                if "error" in event:
                    raise CDPError(f"{method}: {event['error']}")
                return event.get("result", {})

    def _receive(self, deadline: float) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CDPError("timed out waiting for Chromium")
        event = json.loads(self.ws.recv(timeout=left))
        if "method" in event and event.get("sessionId") in self._pages:
            self._pages[event["sessionId"]].on_event(event["method"], event.get("params", {}))
        return event

    def open(self, url: str, settle: float = 0.3) -> Page:
        """A new tab on `url`, after its load event and `settle` seconds for late messages."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.size[0],
            height=self.size[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        page.send("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while True:
            event = self._receive(deadline)
            if event.get("method") == "Page.loadEventFired" and event.get("sessionId") == session:
                break
        end = time.monotonic() + settle
        while time.monotonic() < end:
            try:
                self._receive(end)
            except (CDPError, TimeoutError):
                break
        return page
