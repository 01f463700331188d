"""End-to-end: headless Chromium drives the dashboard served over the real Redis.

Needs Debian's chromium and chromium-driver (``scripts/lib/env.sh``'s ``ensure_chromium``
installs them); skipped without them, except under CI=true where that fails. With
``TTA_COORD_SCREENSHOTS_DIR`` set, the screenshot test writes the docs' pictures there
(``scripts/dashboard-screenshots``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tta_agent_coordination.plans import RunStatus, Task
from tta_agent_coordination.testing import real_redis, unique_prefix
from tta_agent_coordination.testing.pytest_plugin import skip_or_fail

from .live import IDLE, WORKER, LiveDashboard

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TTA_COORD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TTA_COORD_CHROMEDRIVER", "/usr/bin/chromedriver")
TOKEN = "browser-token"


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: the browser tests must run; see ensure_chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            _missing(f"{path} is not installed (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,860",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveDashboard]:
    async def check() -> None:
        client = await real_redis()
        await client.aclose()

    try:
        asyncio.run(check())
    except Exception as exc:
        skip_or_fail(f"the browser tests need the real Redis: {exc}")
    dashboard = LiveDashboard(unique_prefix("tb"), TOKEN)
    dashboard.start()
    try:
        yield dashboard
    finally:
        dashboard.stop()


def wait_for(browser: WebDriver, css: str, timeout: float = 15) -> str:
    WebDriverWait(browser, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
    return browser.find_element(By.CSS_SELECTOR, css).text


def poison(live: LiveDashboard, message_id: str) -> None:
    """A message the worker fails once (permanently): it lands in the dead letters."""
    live.send(WORKER, {"kind": "describe", "poison": True}, message_id)
    deadline = 15.0
    while deadline > 0:
        stats = live.call(live.coordinator.queue_stats(WORKER))
        if stats.dead:
            return
        asyncio.run(asyncio.sleep(0.1))
        deadline -= 0.1
    raise AssertionError("the poisoned message never reached the dead letters")


def test_pages_render(browser: WebDriver, live: LiveDashboard) -> None:
    browser.get(f"{live.url}/queues")
    row = wait_for(browser, f'tr[id="queue-{WORKER}"]')
    assert str(WORKER) in row
    assert browser.find_element(By.ID, "mode").text == "writable (token)"
    browser.get(f"{live.url}/agents")
    assert "alive" in wait_for(browser, f'tr[id="agent-{WORKER}"]')
    assert wait_for(browser, f'tr[id="agent-{IDLE}"]')
    browser.get(f"{live.url}/breakers")
    assert "open" in wait_for(browser, 'tr[id="breaker-llm-api"]')


def test_a_live_value_changes_without_a_reload(browser: WebDriver, live: LiveDashboard) -> None:
    browser.get(f"{live.url}/queues/{WORKER}")
    first = int(wait_for(browser, "#added"))
    marker = browser.find_element(By.TAG_NAME, "h1")  # survives htmx swaps of #live only
    WebDriverWait(browser, 20).until(lambda d: int(d.find_element(By.ID, "added").text) > first)
    assert marker.is_displayed()  # same page: no navigation happened


def test_replay_from_the_ui_moves_the_message_back(browser: WebDriver, live: LiveDashboard) -> None:
    poison(live, "void-1")
    browser.get(f"{live.url}/queues/{WORKER}")
    browser.find_element(By.LINK_TEXT, "void-1").click()
    assert wait_for(browser, "#message-id") == "void-1"
    browser.find_element(By.ID, "replay-one").click()
    wait_for(browser, "#confirm-form")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "confirm").click()
    assert "Replayed 1 (message void-1)." in wait_for(browser, "#notice")
    WebDriverWait(browser, 15).until(lambda _: "void-1" in live.handled)
    assert live.call(live.coordinator.queue_stats(WORKER)).dead == 0


def test_a_wrong_token_is_refused(browser: WebDriver, live: LiveDashboard) -> None:
    poison(live, "void-2")
    browser.get(f"{live.url}/queues/{WORKER}/confirm?action=purge")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "confirm").click()
    assert "wrong token: nothing was changed" in wait_for(browser, "#error")
    assert re.search(r"\b403\b", browser.find_element(By.TAG_NAME, "h1").text)
    assert live.call(live.coordinator.queue_stats(WORKER)).dead == 1
    # Clean up for the screenshots: replay it (it succeeds the second time).
    live.call(live.coordinator.replay_dead_letters(WORKER))


def wait_running(live: LiveDashboard, run_id: str) -> None:
    """Until the run's first step was sent (after planning; nobody answers it on IDLE)."""
    deadline = 15.0
    while live.call(live.runtime.status(run_id)) is not RunStatus.RUNNING:
        assert deadline > 0, f"run {run_id} never reached running"
        asyncio.run(asyncio.sleep(0.1))
        deadline -= 0.1


def test_a_run_is_seen_live_and_cancelled_from_the_ui(
    browser: WebDriver, live: LiveDashboard
) -> None:
    live.start_run("ui-live", IDLE)  # nobody answers the narrator: it stays running
    wait_running(live, "ui-live")
    browser.get(f"{live.url}/runs/ui-live")
    assert wait_for(browser, "#run-status") == "running"
    marker = browser.find_element(By.TAG_NAME, "h1")
    # Cancelled elsewhere (the CLI, say): the open page shows it without a reload.
    assert live.call(live.runtime.cancel("ui-live", "from elsewhere"))
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "run-status").text == "cancelled"
    )
    assert marker.is_displayed()

    live.start_run("ui-stuck", IDLE)
    wait_running(live, "ui-stuck")
    browser.get(f"{live.url}/runs")
    assert "running" in wait_for(browser, 'tr[id="run-ui-stuck"]')
    assert "cancelled" in wait_for(browser, 'tr[id="run-ui-live"]')
    browser.find_element(By.LINK_TEXT, "ui-stuck").click()
    assert wait_for(browser, "#run-status") == "running"
    browser.find_element(By.ID, "cancel-run").click()
    wait_for(browser, "#confirm-form")
    browser.find_element(By.ID, "reason").send_keys("stuck on the narrator")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "confirm").click()
    assert wait_for(browser, "#notice") == "Cancelled the run."
    assert wait_for(browser, "#run-status") == "cancelled"
    result = live.call(live.runtime.result("ui-stuck"))
    assert result.status is RunStatus.CANCELLED
    assert result.reason == "stuck on the narrator"


def test_screenshots(browser: WebDriver, live: LiveDashboard, tmp_path: Path) -> None:
    target = Path(os.environ.get("TTA_COORD_SCREENSHOTS_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    poison(live, "void-3")
    live.send(IDLE, {"kind": "narrate"}, "narrate-x")
    letter = live.call(live.coordinator.dead_letters(WORKER, limit=1))[0]
    live.start_run("scene-waiting", IDLE)
    live.start_run("scene-tavern", WORKER)
    done = live.call(
        live.runtime.execute(
            Task(agent=WORKER, payload={"scene": "forest"}), run_id="scene-forest", timeout=25
        )
    )
    assert done.status is RunStatus.COMPLETED
    pages = {
        "queues": ("/queues", f'tr[id="queue-{WORKER}"]'),
        "agents": ("/agents", f'tr[id="agent-{WORKER}"]'),
        "queue": (f"/queues/{WORKER}", "#dead-letters"),
        "dead-letter": (f"/queues/{WORKER}/dead/{letter.dead_letter_id}", "#message-id"),
        "breakers": ("/breakers", 'tr[id="breaker-llm-api"]'),
        "runs": ("/runs", 'tr[id="run-scene-forest"]'),
        "run": ("/runs/scene-forest", "#events"),
    }
    for name, (path, ready) in pages.items():
        browser.get(live.url + path)
        wait_for(browser, ready)
        if name == "queues":  # let a few refreshes draw the sparklines
            WebDriverWait(browser, 20).until(
                lambda d: d.find_element(By.CSS_SELECTOR, "svg.spark polyline").get_attribute(
                    "points"
                )
            )
            asyncio.run(asyncio.sleep(4))
        out = target / f"dashboard-{name}.png"
        assert browser.save_screenshot(str(out))
        assert out.stat().st_size > 5_000
