"""The cockpit in a real browser: Debian's chromium, headless, against ``kyperian up``.

A person signs in with the engine token, alerts are sent with the CLI, the decision
appears on the board without a reload (htmx polling), and its order, waiting for approval,
is approved with the page's button and shows filled; "halt and flatten" asks, then halts
and closes the position. Screenshots go to
``reports/browser/`` (``KYPERIAN_SCREENSHOT_DIR`` moves them), which CI keeps as an
artifact. Without chromium and chromedriver the module is skipped, saying why;
``scripts/ensure-chromium.sh`` (run by ``make test`` and ``.ci/run``) installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from kyperian.local.launcher import RunningStack, StackDidNotStart, launch

pytestmark = pytest.mark.browser


API_KEY: Final = "browser-key-0123456789abcdefghijklmnopq"
CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER: Final = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SYMBOL: Final = "BRWSR"
FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def _screenshots() -> Path:
    target = Path(os.environ.get("KYPERIAN_SCREENSHOT_DIR", "reports/browser"))
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """GIVEN the whole system started as `kyperian up` on free ports."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium/chromedriver missing: run scripts/ensure-chromium.sh")
    # Orders from actionable decisions wait for a person (approval mode), on the paper venue.
    trading = {"KYPERIAN_AUTO_TRADING": "true", "KYPERIAN_APPROVAL_MODE": "true"}
    saved = {name: os.environ.get(name) for name in trading}
    os.environ.update(trading)
    try:
        started = launch(API_KEY, tmp_path_factory.mktemp("browser-stack"))
    except StackDidNotStart as exc:
        pytest.fail(str(exc))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def browser(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    """A fresh headless chromium profile: no cookies, no cache, no network of its own."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _send(stack: RunningStack, action: str, timeframe: str, price: float) -> None:
    """One alert through the CLI, as a trader would type it."""
    subprocess.run(  # noqa: S603 - our own CLI, fixed argv
        [sys.executable, "-m", "kyperian.cli", "send", SYMBOL, action, timeframe,
         "--source", "luxalgo", "--price", str(price), "--confidence", "85",
         "--url", stack.gateway, "--key", API_KEY],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def test_sign_in_then_a_decision_appears_on_the_board_without_a_reload(
    stack: RunningStack, browser: Chrome
) -> None:
    shots = _screenshots()
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)

    # GIVEN the dashboard URL `kyperian up` (make run) printed, opened by a person: sent to
    # sign in first
    assert any(f"{stack.engine}/ui" in line for line in stack.output)
    browser.get(f"{stack.engine}/ui")
    wait.until(ec.presence_of_element_located((By.NAME, "token")))
    assert "/login" in browser.current_url
    browser.find_element(By.NAME, "token").send_keys(stack.engine_token)
    browser.find_element(By.NAME, "token").submit()
    wait.until(ec.presence_of_element_located((By.ID, "board")))
    browser.execute_script("window.kyperianNoReload = 'still here';")
    browser.save_screenshot(str(shots / "01-signed-in.png"))

    # WHEN aligned alerts arrive through the CLI
    _send(stack, "buy", "1W", 100.0)
    _send(stack, "buy", "1D", 101.0)
    _send(stack, "strong_buy", "4h", 102.5)

    # THEN the board shows the symbol's sized buy, fresh cells, and the page was never reloaded
    decision = (By.CSS_SELECTOR, f'tr[data-symbol="{SYMBOL}"] td.decision .action')
    wait.until(ec.text_to_be_present_in_element(decision, "BUY"))
    fresh = f'tr[data-symbol="{SYMBOL}"] td.fresh'
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, fresh)) == 3)
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-symbol="{SYMBOL}"]').text
    # (the first actionable buy's order, pending, counts as exposure: a later buy may be
    # vetoed for it, and then the board says so in words)
    assert "score" in row
    assert "vetoed" not in row or "would exceed" in row
    assert browser.execute_script("return window.kyperianNoReload") == "still here"
    # AND the feed lists the three alerts; the chart panel draws on a canvas once it refreshes
    wait.until(lambda d: d.find_element(By.ID, "feed").text.count(SYMBOL) >= 3)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tv-attr-logo"))
    browser.save_screenshot(str(shots / "02-decision-on-board.png"))
    # AND its order waits for approval; approving it in the page fills it, still without a reload
    approve = (By.CSS_SELECTOR, '#ledger tr[data-order] button[name="approve"]')
    wait.until(ec.element_to_be_clickable(approve))
    browser.execute_script("document.getElementById('ledger').scrollIntoView()")
    browser.save_screenshot(str(shots / "03-pending-approval.png"))
    browser.find_element(*approve).click()
    filled = (By.CSS_SELECTOR, '#ledger tr[data-order-state="FILLED"]')
    wait.until(ec.presence_of_element_located(filled))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#ledger tr[data-order]"))
    assert browser.find_elements(By.CSS_SELECTOR, f'#ledger tr[data-position="{SYMBOL}"]')
    assert browser.execute_script("return window.kyperianNoReload") == "still here"
    browser.save_screenshot(str(shots / "04-approved-and-filled.png"))
    # AND "halt and flatten" asks first, then halts the account and closes the position
    _halt_and_flatten(browser, wait, shots)
    # AND nothing was refused by the page's content security policy or failed in a script
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [e["message"] for e in log if e["level"] == "SEVERE"]
    assert errors == []


def _halt_and_flatten(browser: Chrome, wait: WebDriverWait[Chrome], shots: Path) -> None:
    """Press "halt and flatten", see the closing order asked about, confirm, see it done."""
    browser.find_element(By.CSS_SELECTOR, '#ledger a[href="/ui/halt/flatten"]').click()
    confirm = (By.CSS_SELECTOR, '#ledger form[action="/ui/halt/flatten"] button')
    wait.until(ec.element_to_be_clickable(confirm))
    assert browser.find_elements(By.CSS_SELECTOR, f'#ledger li[data-flatten="{SYMBOL}"]')
    browser.save_screenshot(str(shots / "05-halt-and-flatten-asks.png"))
    browser.find_element(*confirm).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "ledger"), "TRADING HALTED"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#ledger tr[data-position]"))
    filled = (By.CSS_SELECTOR, '#ledger tr[data-order-state="FILLED"]')
    wait.until(lambda d: len(d.find_elements(*filled)) == 2)  # the buy, and the closing sell
    assert browser.execute_script("return window.kyperianNoReload") == "still here"
    browser.save_screenshot(str(shots / "06-halted-and-flat.png"))


def test_the_cockpit_fits_a_phone_screen(stack: RunningStack, browser: Chrome) -> None:
    # GIVEN the signed-in cockpit  WHEN the window is a phone's width
    browser.set_window_size(390, 844)
    browser.get(f"{stack.engine}/ui")
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "board")))
    # THEN the page does not scroll sideways (wide tables scroll inside their panel)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    viewport = browser.execute_script("return window.innerWidth")
    browser.save_screenshot(str(_screenshots() / "07-phone.png"))
    assert width <= viewport
