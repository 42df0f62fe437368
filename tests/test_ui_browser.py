"""The web UI in a real browser: headless Debian Chromium through Selenium (its own driver, no download).

Load the page, pick the shared clip, ask a question, see the moment chips, click one: the player seeks to
that moment. Screenshots are kept under the test's tmp folder (and $GA_UI_SCREENSHOTS if set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.fail(
        "Chromium missing: scripts/setup_env.sh installs Debian's chromium and chromium-driver", pytrace=False
    )

webdriver = pytest.importorskip("selenium.webdriver")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from grounding_agent.ui import app as ui  # noqa: E402
from tests.test_ui import CLIP, free_port, uniform_session_factory  # noqa: E402

# Chromium as the machine-facts note says it runs here: no sandbox as root, no background traffic; and
# every host but loopback resolves to nothing, so the page cannot reach beyond this machine.
CHROME_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
] + ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def running_app(tmp_path, real_clips):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(real_clips[CLIP], media / CLIP)
    config = ui.UIConfig(media, tmp_path / "out")
    demo = ui.build_app(config, uniform_session_factory())
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **ui.launch_options(config),
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    if keep := os.environ.get("GA_UI_SCREENSHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_pick_ask_click_a_moment_and_the_player_seeks(browser, running_app, tmp_path):
    wait = WebDriverWait(browser, 90)
    browser.get(running_app)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-choice input"))
    browser.find_element(By.CSS_SELECTOR, "#video-choice input").click()
    option = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f'[role=option][aria-label="{CLIP}"]'))
    option.click()
    browser.find_element(By.CSS_SELECTOR, "#open").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#player video"))
    assert CLIP in browser.find_element(By.CSS_SELECTOR, "#status").text
    screenshot(browser, tmp_path, "1-opened")

    browser.find_element(By.CSS_SELECTOR, "#message textarea").send_keys("when does the person sit down?")
    browser.find_element(By.CSS_SELECTOR, "#send").click()
    chips = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chips .chip"))
    assert chips and all(c.text.startswith("#") for c in chips)
    assert "when does the person sit down?" in browser.find_element(By.CSS_SELECTOR, "#chat").text

    wait.until(lambda d: d.execute_script("return document.querySelector('#player video').readyState") >= 1)
    target = chips[-1]
    start_s = float(target.get_attribute("data-start"))
    target.click()
    wait.until(
        lambda d: (
            abs(d.execute_script("return document.querySelector('#player video').currentTime") - start_s)
            < 0.05
        )
    )
    assert "active" in target.get_attribute("class")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline img"))
    shot = screenshot(browser, tmp_path, "2-moment-clicked")
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
