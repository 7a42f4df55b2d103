"""The leaderboard Space, the metric Space and the HTML report in a real browser: each gradio app is
launched on a loopback port and driven with Debian's headless Chromium through selenium; the report is
opened from disk. Screenshots go to each test's temporary folder.

Leaderboard data: three synthetic models (tests/hub_summaries.py) with hand-chosen values: test_vit-ft
(quality 0.6, accuracy 0.95), test_resnet-zs (0.5, 0.9) and test_convnext-zs (0.4, accuracy 0.6: not
competent), each with 16 rows (standard clean: 4 CAMs + 2 null maps; blur severities 1 and 3: 4 CAMs +
the uniform map).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hub_summaries import summary, write_summary
from PIL import Image

# gradio asks api.gradio.app for analytics and its latest version unless this is off; set before import.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="Debian's chromium and chromedriver are missing (apt install chromium chromium-driver)",
)
WAIT_S = 30
MODELS = (("test_vit", "ft", 0.6, 20.0, 0.95), ("test_resnet", "zs", 0.5, 10.0, 0.9),
          ("test_convnext", "zs", 0.4, 5.0, 0.6))


def load_app(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(demo):
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].get_attribute("textContent").strip() if found else ""


def grid_rows(driver, css: str) -> list[dict]:
    """The rendered body rows of the gradio Dataframe under `css`, as {column header: cell text}."""
    from selenium.webdriver.common.by import By

    header_cells = driver.find_elements(By.CSS_SELECTOR, f"{css} [role=columnheader]")
    headers = [h.get_attribute("title") for h in header_cells]
    rows = []
    for row in driver.find_elements(By.CSS_SELECTOR, f"{css} [role=row].virtual-row"):
        cells = row.find_elements(By.CSS_SELECTOR, "[role=gridcell]")
        rows.append(dict(zip(headers, (c.get_attribute("textContent").strip() for c in cells), strict=True)))
    return rows


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from cambench_qr.hub_cards import HubRoot, build_leaderboard
    from cambench_qr.hub_cards.space import write_galleries, write_leaderboard_space

    root = tmp_path_factory.mktemp("browser")
    for backbone, regime, quality, ms, accuracy in MODELS:
        payload = summary(backbone, regime, quality, ms, accuracy)
        write_summary(root / "eval" / f"{backbone}-{regime}", payload)
    hub = HubRoot(root / "hub", "alice")
    build_leaderboard([root / "eval"], hub.leaderboard_dir)
    gallery = np.zeros((40, 60, 3), np.uint8)
    gallery[:, :30] = (200, 30, 30)
    buffer = root / "gallery.png"
    Image.fromarray(gallery).save(buffer)
    write_galleries(hub.leaderboard_dir, {f"{b}-{r}": buffer.read_bytes() for b, r, *_ in MODELS})
    write_leaderboard_space(hub)
    return hub


def test_leaderboard_space_shows_the_headline_and_filters_the_table(browser, hub, tmp_path):
    from selenium.webdriver.common.by import By

    app = load_app(hub.leaderboard_space_dir / "app.py", "leaderboard_space_app")
    settings = app.read_settings(hub.leaderboard_space_dir / "space.json")
    with serve(app.build_demo(str(hub.leaderboard_dir), settings)) as url:
        browser.get(url)
        # default view: clean `standard` rows of the two competent models, 4 CAMs + 2 null maps each
        wait(browser, lambda d: re.search(r"\b12 of 48 rows \(2 models\)", text_of(d, "#row-count")))
        grid = browser.find_element(By.CSS_SELECTOR, "#leaderboard-table [role=grid]")
        assert grid.get_attribute("aria-rowcount") == "13"  # header + 12
        headline = text_of(browser, "#headline")
        assert "test_vit-ft" in headline and "test_resnet-zs" in headline
        assert "Left out as not competent" in headline and "test_convnext-zs (0.600)" in headline
        rows = grid_rows(browser, "#leaderboard-table")
        assert {r["model"] for r in rows} == {"test_vit-ft", "test_resnet-zs"}
        # CAM methods first, best FMR first: test_vit-ft's EigenGrad-CAM (method index 3: 0.6 + 0.03)
        top = ("test_vit-ft", "EigenGrad-CAM", "0.63")
        assert (rows[0]["model"], rows[0]["method"], rows[0]["FMR ↑"]) == top
        browser.save_screenshot(str(tmp_path / "leaderboard-space.png"))

        browser.find_element(By.CSS_SELECTOR, "#filter-method input").click()
        option = "#filter-method [role=option][aria-label='Grad-CAM']"
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, option))
        browser.find_element(By.CSS_SELECTOR, option).click()
        wait(browser, lambda d: re.search(r"\b2 of 48 rows \(2 models\)", text_of(d, "#row-count")))
        wait(browser, lambda d: len(grid_rows(d, "#leaderboard-table")) == 2)
        rows = grid_rows(browser, "#leaderboard-table")
        assert [(r["model"], r["method"], r["FMR ↑"], r["FMR ↑ 95% CI"]) for r in rows] == [
            ("test_vit-ft", "Grad-CAM", "0.6", "[0.550, 0.650]"),
            ("test_resnet-zs", "Grad-CAM", "0.5", "[0.450, 0.550]"),
        ]
        verdicts = rows[0]["vs uniform map (FMR ↑, BL ↓, DtS ↓)"]
        assert verdicts == "better, better, better"  # hub_summaries.UNIFORM_VERDICTS[0] for every score

        browser.find_element(By.CSS_SELECTOR, "#filter-competent input").click()
        wait(browser, lambda d: re.search(r"\b3 of 48 rows \(3 models\)", text_of(d, "#row-count")))
        wait(browser, lambda d: len(grid_rows(d, "#leaderboard-table")) == 3)
        assert [r["model"] for r in grid_rows(browser, "#leaderboard-table")][-1] == "test_convnext-zs"
        browser.save_screenshot(str(tmp_path / "leaderboard-space-filtered.png"))

        panels = {
            "Figures": [f"figure-leaderboard{s}" for s in ("", "-severity", "-mass")],
            "Overlay galleries": [f"gallery-{b}-{r}" for b, r, *_ in MODELS],
        }
        loaded = (
            "const i = document.getElementById(arguments[0])?.querySelector('img');"
            "return !!i && i.naturalWidth > 0"
        )
        for tab, ids in panels.items():
            [button] = [b for b in browser.find_elements(By.CSS_SELECTOR, "[role=tab]") if b.text == tab]
            button.click()
            wait(browser, lambda d, ids=ids: all(d.execute_script(loaded, i) for i in ids))
        browser.save_screenshot(str(tmp_path / "leaderboard-space-galleries.png"))
    assert (tmp_path / "leaderboard-space.png").stat().st_size > 10_000


def test_leaderboard_space_shows_one_message_for_bad_input(browser, hub, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # the Hub id cannot be reached
    app = load_app(hub.leaderboard_space_dir / "app.py", "leaderboard_space_app")
    settings = app.read_settings(hub.leaderboard_space_dir / "space.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other-schema"
    shutil.copytree(hub.leaderboard_dir, other)
    parquet = next((other / "data").glob("*.parquet"))
    pd.read_parquet(parquet).assign(schema_version=2).to_parquet(parquet)
    cases = {
        str(empty): f"{empty} holds no leaderboard table",
        str(other): "has results schema 2; this Space reads schema 1",
        "alice/not-on-the-hub": "cannot download the Hub dataset 'alice/not-on-the-hub'",
    }
    for k, (source, message) in enumerate(cases.items()):
        with serve(app.build_demo(source, settings)) as url:
            browser.get(url)
            wait(browser, lambda d: text_of(d, "#leaderboard-error"))
            shown = text_of(browser, "#leaderboard-error")
            body = text_of(browser, "body")
            browser.save_screenshot(str(tmp_path / f"bad-input-{k}.png"))
        assert message in shown and shown.startswith("The leaderboard cannot be shown.")
        assert "Traceback" not in body and not text_of(browser, "#leaderboard-table")


def _upload(browser, component: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    remove = browser.find_elements(By.CSS_SELECTOR, f"#{component} button[aria-label='Remove Image']")
    if remove:
        remove[0].click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{component} input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, f"#{component} input[type=file]").send_keys(str(path))
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{component} img"))


def _submit(browser) -> None:
    from selenium.webdriver.common.by import By

    [button] = [b for b in browser.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Submit"]
    button.click()


def test_metric_space_gives_the_structure_scores_of_an_upload(browser, tmp_path):
    import cambench_qr.metrics as metrics
    from cambench_qr.parts import NUM_PARTS

    app = load_app(Path(metrics.EVALUATE_MODULE) / "app.py", "metric_space_app")
    rng = np.random.default_rng(7)
    parts = np.kron(rng.integers(0, NUM_PARTS, (8, 8)), np.ones((4, 4), np.int64)).astype(np.uint8)
    saliency = (rng.random((32, 32)) * 255).astype(np.uint8)
    Image.fromarray(saliency).save(tmp_path / "saliency.png")
    Image.fromarray(parts).save(tmp_path / "parts.png")
    Image.fromarray(parts[:16]).save(tmp_path / "parts-short.png")
    Image.fromarray(np.where(parts == 9, 12, parts).astype(np.uint8)).save(tmp_path / "parts-id12.png")
    expected = metrics.structure_scores(saliency[None].astype(np.float32), parts[None])
    with serve(app.demo) as url:
        browser.get(url)
        _upload(browser, "saliency", tmp_path / "saliency.png")
        _upload(browser, "parts", tmp_path / "parts.png")
        _submit(browser)
        wait(browser, lambda d: len(grid_rows(d, "#scores")) == len(app.HEADLINE))
        rows = grid_rows(browser, "#scores")
        browser.save_screenshot(str(tmp_path / "metric-space.png"))
        assert [r["score"] for r in rows] == list(app.HEADLINE)
        for r in rows:
            for column, key in (("value", r["score"]), ("chance", f"chance_{r['score']}")):
                want = float(expected[key][0])
                if np.isnan(want):  # dts_modules without a module pitch
                    assert r[column] in ("", "NaN", "nan"), (key, r[column])
                else:
                    assert float(r[column]) == pytest.approx(round(want, 4), abs=1e-9), key
        assert float(rows[0]["value"]) > 0  # a real score, not an empty table

        for upload, message in (
            ("parts-short.png", "the part map is 32x16 px but the saliency map is 32x32 px"),
            ("parts-id12.png", "the part map holds id 12: part ids are 0..9"),
        ):
            _upload(browser, "parts", tmp_path / upload)
            _submit(browser)
            wait(browser, lambda d, message=message: message in text_of(d, "body"))
            browser.save_screenshot(str(tmp_path / f"metric-space-{upload}"))


def test_html_report_images_load_after_the_folder_moves(browser, hub, tmp_path):
    from cambench_qr.hub_cards.report import write_report

    gallery = (hub.leaderboard_dir / "galleries" / "test_vit-ft.png").read_bytes()
    write_report(tmp_path / "report", hub.leaderboard_dir, {"test_vit-ft": gallery}, ["hub/x"])
    moved = tmp_path / "elsewhere" / "report"
    shutil.move(tmp_path / "report", moved)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(moved / "index.html", alone / "index.html")  # self-contained: no file next to it
    for page in (moved / "index.html", alone / "index.html"):
        browser.get(page.as_uri())
        wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")
        wait(browser, lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight])"
        )
        headings = browser.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)"
        )
        browser.save_screenshot(str(tmp_path / f"report-{page.parent.name}.png"))
        assert [alt for alt, *_ in images] == [
            "FMR ↑ vs latency",
            "FMR ↑ by distortion severity",
            "where the map mass lies on clean images",
            "test_vit-ft",
        ]
        assert all(width > 0 and height > 0 for _, width, height in images), images
        assert headings[0] == "Headline" and headings.index("Figures") < headings.index("Overlay galleries")
