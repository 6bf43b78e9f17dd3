"""A real headless Chromium for the web desk's tests, driven through Selenium.

Debian's ``chromium`` and ``chromium-driver`` (no browser download, no
Selenium Manager: both paths are given). Every Selenium call blocks, so it
runs in a thread (``Browser.do``) while the nodes under test keep serving on
the test's event loop.

``check_page`` is what every page gets: no console error, no request to any
host but the nodes (Chrome's performance log lists every request the page
made), no serious or critical axe-core violation, and a screenshot at
desktop and at phone width in ``SCREENSHOTS`` (printed by the tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("AVISA_SCREENSHOTS", ROOT / ".cache" / "screenshots"))
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DESKTOP = (1280, 900)
PHONE = (390, 844)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--password-store=basic",
)
ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost"})


def missing() -> str | None:
    """What to install when the browser is not there (the Makefile installs it as root)."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not absent:
        return None
    return f"{', '.join(absent)} missing: apt-get install -y chromium chromium-driver"


@dataclass
class Seen:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class Browser:
    def __init__(
        self, profile: Path, *, javascript: bool = True, window: tuple[int, int] = DESKTOP
    ) -> None:
        os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
        os.environ.setdefault("SE_AVOID_STATS", "true")
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={window[0]},{window[1]}")
        if not javascript:  # a cheap phone's browser, or a resident who switched it off
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2}
            )
        options.add_argument("--lang=es")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(90)  # two cores, many tests
        self.seen = Seen()

    async def do(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def get(self, url: str) -> None:
        await self.do(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.do(self.driver.execute_script, script, *args)

    async def wait(self, script: str, timeout: float = 15.0, what: str = "") -> Any:
        """Until ``script`` (a JS expression) is truthy; its value. Polls with a deadline."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(f"return ({script});")
            if value:
                return value
            if time.monotonic() > deadline:
                page = await self.do(lambda: self.driver.page_source[-3000:])
                url = await self.do(lambda: self.driver.current_url)
                seen = await self.do(self.drain)
                raise AssertionError(
                    f"timed out waiting for {what or script} at {url}: "
                    f"console {seen.console_errors}, requests {seen.requests[-5:]} "
                    f"{seen.events}: {page}"
                )
            await asyncio.sleep(0.02)

    async def new_window(self) -> str:
        """Open another window (another person's screen) and switch to it; its handle."""
        await self.do(self.driver.switch_to.new_window, "window")
        return str(self.driver.current_window_handle)

    async def switch(self, handle: str) -> None:
        await self.do(self.driver.switch_to.window, handle)

    async def login(self, base: str, token: str) -> None:
        await self.get(base + "/desk/login")
        await self.js(
            "document.getElementById('token').value = arguments[0];"
            "document.querySelector('form[action=\"/desk/login\"]').submit();",
            token,
        )
        await self.wait("document.querySelector('nav.tabs') !== null", what="the desk after login")

    def drain(self) -> Seen:
        """Console errors and request URLs since the last drain."""
        seen = Seen()
        for entry in self.driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                seen.console_errors.append(entry.get("message", ""))
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                seen.requests.append(message["params"]["request"]["url"])
            elif message.get("method") in ("Network.loadingFailed", "Network.responseReceived"):
                seen.events.append(json.dumps(message["params"])[:300])
        self.seen.console_errors += seen.console_errors
        self.seen.requests += seen.requests
        return seen

    async def check_page(self, name: str) -> Seen:
        """Console, hosts, accessibility, screenshots: what every desk page must pass."""
        await self.wait("document.readyState === 'complete'", what=f"{name} loaded")
        violations = await self.axe()
        serious = [v for v in violations if v.get("impact") in ("serious", "critical")]
        assert not serious, f"{name}: axe-core: " + json.dumps(
            [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in serious],
        )
        await self.screenshots(name)
        seen = await self.do(self.drain)
        assert not seen.console_errors, f"{name}: console errors {seen.console_errors}"
        foreign = [u for u in seen.requests if not _local(u)]
        assert not foreign, f"{name}: requests to other hosts {foreign}"
        return seen

    async def axe(self) -> list[dict[str, Any]]:
        await self.js(AXE.read_text())
        result = await self.do(
            self.driver.execute_async_script,
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations)).catch(e => done([{id: 'axe-failed', impact:"
            " 'critical', nodes: [{target: [String(e)]}]}]));",
        )
        return list(result)

    async def screenshots(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            await self.emulate(width, height, mobile=label == "phone")
            await self.wait("document.fonts ? document.fonts.status === 'loaded' : true")
            await self.do(self.driver.save_screenshot, str(SCREENSHOTS / f"{name}-{label}.png"))
        await self.emulate(*DESKTOP, mobile=False)

    async def emulate(self, width: int, height: int, *, mobile: bool) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        await self.do(self.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride", metrics)
        await self.js("window.dispatchEvent(new Event('resize'));")

    async def weigh(self, url: str, *, cold: bool) -> dict[str, Any]:
        """Load ``url`` (with an empty cache when ``cold``): the requests that reached the
        node (not those the browser answered from its cache) and their bytes on the wire."""
        await self.do(self.drain)
        if cold:
            await self.do(self.driver.execute_cdp_cmd, "Network.clearBrowserCache", {})
        await self.get(url)
        await self.wait("document.readyState === 'complete'")
        if await self.js("return !!document.body.dataset.stream"):
            await self.wait("document.getElementById('live').classList.contains('on')")
        urls: dict[str, str] = {}
        sizes: dict[str, int] = {}
        cached: set[str] = set()
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
            elif message.get("method") == "Network.requestServedFromCache":
                cached.add(params["requestId"])
            elif message.get("method") == "Network.responseReceived":
                if params["response"].get("fromDiskCache"):
                    cached.add(params["requestId"])
            elif message.get("method") == "Network.loadingFinished":
                sizes[params["requestId"]] = int(params["encodedDataLength"])
            elif message.get("method") == "Network.dataReceived":
                sizes[params["requestId"]] = sizes.get(params["requestId"], 0) + int(
                    params.get("encodedDataLength", 0)
                )
        fetched = {
            rid: u
            for rid, u in urls.items()
            if not u.startswith(("data:", "chrome:")) and rid not in cached
        }
        return {
            "requests": len(fetched),
            "bytes": sum(sizes.get(rid, 0) for rid in fetched),
            "urls": sorted(urlsplit(u).path for u in fetched.values()),
        }

    def quit(self) -> None:
        self.driver.quit()


def _local(url: str) -> bool:
    parts = urlsplit(url)
    # The browser's own pages (its first new tab) are not the network.
    if parts.scheme in ("data", "blob", "about", "chrome", "chrome-untrusted"):
        return True
    return parts.scheme in ("http", "https", "ws") and (parts.hostname or "") in ALLOWED_HOSTS


def fresh_profile(base: Path) -> Path:
    profile = base / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    return profile
