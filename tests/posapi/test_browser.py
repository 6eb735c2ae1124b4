"""A web page in headless Chromium uses the POS API from JavaScript: CORS admits its origin,
it commits a sale, and the WebSocket delivers the scan a pty scanner produced.

Needs the Debian chromium + chromium-driver packages (``make setup`` installs them).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from broker.launcher import Mosquitto
from drivers.sim.scanner import VirtualSerialScanner
from tests.posapi.support import DEVICE, api_url, sale_body, wait_for
from tests.support.terminal import Terminal, make_terminal

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
WEB = Path(__file__).parent / "web"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs chromium and chromium-driver (make setup installs them)",
)


@pytest.fixture
def page_server() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(WEB))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: object, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text  # type: ignore[attr-defined]


def wait_text(driver: object, element_id: str, predicate, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = text_of(driver, element_id)
        if predicate(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"#{element_id} is {text_of(driver, element_id)!r}; log: {text_of(driver, 'log')!r}")


def test_browser_pos_sells_and_sees_the_scan(
    tmp_path: Path, mosquitto: Mosquitto, page_server: str, browser: object
) -> None:
    with VirtualSerialScanner(suffix=b"\r\n") as scanner:
        for terminal in make_terminal(tmp_path, mosquitto, scanner=scanner, cors=[page_server]):
            run_page(terminal, scanner, page_server, browser)


def run_page(terminal: Terminal, scanner: VirtualSerialScanner, page: str, driver: object) -> None:
    terminal.ready_to_sell()
    fragment = urlencode({"api": api_url(terminal.socket), "token": terminal.pos_token, "code": "anna", "pin": "4711"})
    driver.get(f"{page}/pos.html#{fragment}")  # type: ignore[attr-defined]
    assert wait_text(driver, "status", lambda t: t != "-") == f"{DEVICE} licence ok"
    wait_text(driver, "ws", lambda t: t == "open")
    sale = wait_text(driver, "sale", lambda t: t != "-")
    assert sale.endswith("total 250 change 250")
    wait_text(driver, "log", lambda t: "event sale.committed" in t)
    assert "Pencil" in terminal.printer.wait_for_receipts(1, 15)[0].text
    scanner.scan("4006381333931")
    assert wait_text(driver, "scan", lambda t: t != "-") == "4006381333931"
    assert "failed" not in text_of(driver, "log")


STATUS_SCREENSHOT_COPY = Path("/work/notes/status-page.png")  # where a person reviews the layout


def test_status_page_in_chromium(tmp_path: Path, mosquitto: Mosquitto, browser: object) -> None:
    """The status page as a kiosk shows it: key texts visible, receipt previews loaded; screenshot kept."""
    for terminal in make_terminal(tmp_path, mosquitto):
        terminal.ready_to_sell()
        pos = terminal.pos()
        pos.login("anna")
        pos.ok("POST", "/v1/sales", sale_body())
        terminal.printer.wait_for_receipts(1, 15)
        look_at_status_page(terminal, browser, tmp_path / "status-page.png")


def look_at_status_page(terminal: Terminal, driver: object, shot: Path) -> None:
    from selenium.webdriver.common.by import By

    client = terminal.process.client()
    wait_for(lambda: client.call("print.jobs", limit=1)[0]["state"] == "printed", 15, "receipt printed")
    driver.set_window_size(1024, 1000)  # type: ignore[attr-defined]
    driver.get(f"{api_url(terminal.socket)}/status")  # type: ignore[attr-defined]
    images = driver.find_elements(By.CSS_SELECTOR, "#receipts img")  # type: ignore[attr-defined]
    assert images
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    wait_for(lambda: all(driver.execute_script(loaded, i) for i in images), 15, "previews loaded")  # type: ignore[attr-defined]
    assert text_of(driver, "device") == DEVICE
    devices = text_of(driver, "devices")
    assert "front" in devices and "ready" in devices and "cash" in devices
    assert "connected" in text_of(driver, "cloud")
    assert "allowed" in text_of(driver, "licence")
    assert "Roster version" in text_of(driver, "cashiers")
    assert "receipt" in text_of(driver, "receipts") and "printed" in text_of(driver, "receipts")
    assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    if STATUS_SCREENSHOT_COPY.parent.is_dir():
        shutil.copyfile(shot, STATUS_SCREENSHOT_COPY)
