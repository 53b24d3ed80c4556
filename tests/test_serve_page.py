"""The page of `mmrec serve` in a real browser: Debian's headless Chromium, driven through
Selenium and /usr/bin/chromedriver, against a real uvicorn server on 127.0.0.1 (an
ephemeral port) over the generated sample library. One server and one browser for the
module; every check is on the DOM (a screenshot of each state is saved beside it for a
person to look at), and every wait is an explicit WebDriverWait on a data-* attribute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait
from served import running, sample_catalog

from mmrec.serve import ServeConfig, create_app
from mmrec.serve.service import Service

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic", "--window-size=1280,1000", "--mute-audio")
WAIT = 30.0  # seconds: a text query embeds on 2 cores in well under that


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    lib, db = sample_catalog(tmp_path_factory)
    service = Service(ServeConfig(db=db))
    with running(create_app(ServeConfig(db=db), service)) as url:
        ids = {Path(r["path"]).stem: r["id"] for r in service.store.items.to_arrow().to_pylist()}
        yield SimpleNamespace(url=url, lib=lib, ids=ids)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[SimpleNamespace]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the page tests need Debian's chromium and "
                    "chromium-driver (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with the driver's path: Selenium Manager never runs
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=options)
    shots = tmp_path_factory.mktemp("screenshots")
    try:
        yield SimpleNamespace(driver=driver, shots=shots)
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(server, browser) -> SimpleNamespace:
    """The page, loaded once: the tests go on from the state the previous one left."""
    browser.driver.get(server.url + "/")
    p = SimpleNamespace(d=browser.driver, url=server.url, ids=server.ids, lib=server.lib,
                        shots=browser.shots)
    wait(p, lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready=true]"))
    return p


# -- helpers ------------------------------------------------------------------------------

def wait(p, condition: Callable, timeout: float = WAIT):
    return WebDriverWait(p.d, timeout, poll_frequency=0.05).until(condition)


def css(p, selector: str) -> list:
    return p.d.find_elements(By.CSS_SELECTOR, selector)


def one(p, selector: str):
    return p.d.find_element(By.CSS_SELECTOR, selector)


def shot(p, name: str) -> Path:
    path = p.shots / f"{name}.png"
    p.d.save_screenshot(str(path))
    return path


def answered(p, selector: str, action: Callable[[], None]) -> None:
    """Do `action`, then wait until the list at `selector` has answered one more request."""
    before = int(one(p, selector).get_attribute("data-seq") or 0)
    action()

    def done(d) -> bool:
        el = d.find_element(By.CSS_SELECTOR, selector)
        return int(el.get_attribute("data-seq") or 0) > before and el.get_attribute("data-state") != "loading"

    wait(p, done)


def search(p, text: str) -> list:
    box = one(p, "#q")
    box.clear()
    answered(p, "#results", lambda: box.send_keys(text, Keys.ENTER))
    return css(p, "#results .hit")


def hit_ids(p) -> list[str]:
    return [t.get_attribute("data-item-id") for t in css(p, "#results .hit")]


def rec_ids(p) -> list[str]:
    return [r.get_attribute("data-item-id") for r in css(p, "#recs .rec")]


def js(p, script: str, *args):
    return p.d.execute_script(script, *args)


def set_range(p, selector: str, value: float) -> None:
    js(p, "const el = document.querySelector(arguments[0]); el.value = arguments[1];"
          "el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change'));", selector, value)


def seeked_to(p, selector: str) -> float:
    """Wait until the media element at `selector` has loaded and finished a seek; its time then."""
    wait(p, lambda d: d.find_element(By.CSS_SELECTOR, selector).get_attribute("data-seeked-to"))
    return float(one(p, selector).get_attribute("data-seeked-to"))


# -- search -------------------------------------------------------------------------------
def test_text_search_shows_tiles_with_scores_and_the_random_weights_label(page):
    note = one(page, "#random-note")
    assert note.is_displayed()
    assert "random weights" in note.text.lower() and "visual" in note.text and "audio" in note.text
    assert note.get_attribute("data-modalities") == "visual,audio"
    assert "9 items" in one(page, "#catalog-stats").text

    tiles = search(page, "football match goals")
    assert tiles and tiles[0].get_attribute("data-item-id") == page.ids["football_highlights"]
    first = tiles[0]
    assert "Football match highlights" in first.find_element(By.CSS_SELECTOR, ".title").text
    assert first.find_element(By.CSS_SELECTOR, "img, .placeholder")  # a thumbnail or its stand-in
    bars = {b.get_attribute("data-modality"): b for b in first.find_elements(By.CSS_SELECTOR, ".bar")}
    assert set(bars) == {"visual", "audio", "text"}
    assert float(bars["text"].get_attribute("data-value")) > 0.3
    assert all("random" in bars[m].get_attribute("class") for m in ("visual", "audio"))
    assert "random" not in bars["text"].get_attribute("class")
    assert "random" in bars["visual"].text.lower()
    notes = [n.text for n in css(page, "#notes .note")]
    assert any("random weights" in n for n in notes)
    assert "results for" in one(page, "#results-status").text
    assert not one(page, "#message").is_displayed()
    shot(page, "01-search")


def test_filters_and_weights_reach_the_api_and_errors_are_shown(page):
    answered(page, "#results", lambda: one(page, ".chip[data-kind=audio]").click())
    kinds = {t.get_attribute("data-kind") for t in css(page, "#results .hit")}
    assert kinds == {"audio"}
    answered(page, "#results", lambda: one(page, ".chip[data-kind='']").click())

    tag = one(page, "#tag-input")
    answered(page, "#results", lambda: tag.send_keys("football", Keys.ENTER))
    assert css(page, "#tag-chips .chip[data-tag=football]")
    assert hit_ids(page) == [page.ids["football_highlights"]]
    answered(page, "#results", lambda: one(page, "#tag-chips .chip[data-tag=football] .chip-x").click())
    assert len(hit_ids(page)) > 1

    title = one(page, "#title-filter")
    answered(page, "#results", lambda: title.send_keys("PASTA", Keys.ENTER))
    titles = [t.text for t in css(page, "#results .hit .title")]
    assert titles and all("pasta" in t.lower() for t in titles)
    answered(page, "#results", title.clear)  # its change event re-runs the search

    # all weights at 0: the API refuses the search, and the page says why
    answered(page, "#results", lambda: [set_range(page, f"#w-{m}", 0) for m in ("visual", "audio", "text")])
    assert one(page, "#results").get_attribute("data-state") == "error"
    message = one(page, "#message")
    assert message.is_displayed() and "weights" in message.text and "422" in message.text
    shot(page, "02-error")
    answered(page, "#results", lambda: one(page, "#w-reset").click())
    assert one(page, "#results").get_attribute("data-state") == "done"
    assert not one(page, "#message").is_displayed()

    answered(page, "#results", lambda: set_range(page, "#w-visual", 0))
    assert one(page, "#w-visual-value").text == "0.00"
    visual = [float(b.get_attribute("data-value")) for b in css(page, "#results .bar[data-modality=visual]")]
    assert visual and all(v == 0 for v in visual)
    answered(page, "#results", lambda: one(page, "#w-reset").click())


def test_search_by_file_from_the_file_input(page):
    clip = page.lib / "pasta_night_small.mkv"
    answered(page, "#results", lambda: one(page, "#file").send_keys(str(clip)))
    results = one(page, "#results")
    assert results.get_attribute("data-source") == "file" and results.get_attribute("data-state") == "done"
    ids = hit_ids(page)
    assert ids[0] == page.ids["pasta_night"] and page.ids["pasta_night_small"] not in ids
    assert "pasta_night_small.mkv" in one(page, "#drop-file").text
    assert "pasta_night_small.mkv" in one(page, "#results-status").text
    shot(page, "03-file-search")


def test_a_moment_plays_in_place_from_its_segment_start(page):
    # the visual vectors are random, so they weigh 0 until their slider is raised: raise it
    # to rank the 5 s frame windows (the sample files' only moments that start after 0 s)
    slider = one(page, "#w-visual")
    assert slider.get_attribute("value") == "0"
    js(page, "arguments[0].value = 1; arguments[0].dispatchEvent(new Event('input'));", slider)
    search(page, "hiking in the mountains")
    answered(page, "#results", lambda: Select(one(page, "#k")).select_by_visible_text("48"))  # every segment
    answered(page, "#results", lambda: one(page, "label.switch").click())
    assert one(page, "#moments").is_selected()
    moments = css(page, "#results .hit.moment")
    assert moments and all(m.get_attribute("data-start") is not None for m in moments)
    later = [m for m in moments
             if float(m.get_attribute("data-start")) > 0 and m.get_attribute("data-kind") == "video"]
    assert later, "no video moment starts after 0 s"
    vlog = [m for m in later if m.get_attribute("data-item-id") == page.ids["mountain_travel_vlog"]]
    tile = (vlog or later)[0]
    start = float(tile.get_attribute("data-start"))
    js(page, "arguments[0].scrollIntoView({block: 'center'})", tile)
    tile.find_element(By.CSS_SELECTOR, ".play-moment").click()
    player = tile.find_element(By.CSS_SELECTOR, "video.moment-player")
    assert player.get_attribute("src").endswith(f"/media/{tile.get_attribute('data-item-id')}")
    at = seeked_to(page, "#results video.moment-player")
    assert abs(at - start) < 0.3, (at, start)
    now = js(page, "return arguments[0].currentTime", player)
    assert start - 0.3 <= now <= float(tile.get_attribute("data-end")) + 0.3
    shot(page, "04-moment")
    # back to items, 12 of them
    answered(page, "#results", lambda: Select(one(page, "#k")).select_by_visible_text("12"))
    answered(page, "#results", lambda: one(page, "label.switch").click())
    assert not css(page, "#results .hit.moment")


# -- the item page --------------------------------------------------------------------------
def test_item_page_timeline_seeks_the_player_and_lists_similar_items(page):
    vlog = page.ids["mountain_travel_vlog"]
    tiles = search(page, "hiking in the mountains")
    assert tiles[0].get_attribute("data-item-id") == vlog
    answered(page, "#item", tiles[0].find_element(By.CSS_SELECTOR, ".title").click)
    assert one(page, "#item").get_attribute("data-state") == "done"
    assert page.d.current_url.endswith(f"#/item/{vlog}")
    assert one(page, "#view-item").is_displayed() and not one(page, "#view-search").is_displayed()
    assert "hiking" in one(page, "#item-title").text.lower()
    player = one(page, "video#player")
    assert player.get_attribute("src").endswith(f"/media/{vlog}")
    random = {m.get_attribute("data-modality"): m.get_attribute("data-random")
              for m in css(page, ".modality")}
    assert random == {"visual": "true", "audio": "true", "text": "false"}

    segs = css(page, "#timeline .seg")
    assert len(segs) >= 4
    starts = sorted(float(s.get_attribute("data-start")) for s in segs
                    if s.get_attribute("data-modality") == "visual")
    target = next(s for s in segs if s.get_attribute("data-modality") == "visual"
                  and float(s.get_attribute("data-start")) == starts[2])
    start = float(target.get_attribute("data-start"))
    assert start > 0
    target.click()
    at = seeked_to(page, "#player")
    assert abs(at - start) < 0.3, (at, start)
    assert js(page, "return arguments[0].readyState", player) >= 1
    assert abs(js(page, "return arguments[0].duration", player) - 8.0) < 0.5
    assert "active" in target.get_attribute("class")

    wait(page, lambda d: d.find_element(By.ID, "similar").get_attribute("data-state") == "done")
    similar = [t.get_attribute("data-item-id") for t in css(page, "#similar .hit")]
    assert similar and vlog not in similar
    shot(page, "05-item")

    # another segment, then back to the search as it was
    other = next(s for s in segs if s.get_attribute("data-modality") == "visual"
                 and float(s.get_attribute("data-start")) == starts[1])
    js(page, "arguments[0].removeAttribute('data-seeked-to')", player)
    other.click()
    assert abs(seeked_to(page, "#player") - starts[1]) < 0.3
    one(page, "#view-item a.back").click()
    wait(page, lambda d: d.find_element(By.ID, "view-search").is_displayed())
    assert hit_ids(page)[0] == vlog
    assert js(page, "return document.querySelector('#player') === null || "
                    "document.querySelector('#player').paused")


def test_an_item_link_with_a_time_starts_the_player_there(page):
    vlog = page.ids["mountain_travel_vlog"]
    answered(page, "#item", lambda: js(page, "location.hash = arguments[0]", f"#/item/{vlog}?t=6"))
    assert one(page, "#item").get_attribute("data-state") == "done"
    assert abs(seeked_to(page, "#player") - 6.0) < 0.3
    js(page, "location.hash = '#/'")
    wait(page, lambda d: d.find_element(By.ID, "view-search").is_displayed())


def test_an_unknown_item_shows_the_api_error(page):
    answered(page, "#item", lambda: js(page, "location.hash = arguments[0]", "#/item/0123456789abcdef"))
    assert one(page, "#item").get_attribute("data-state") == "error"
    message = one(page, "#message")
    assert message.is_displayed() and "404" in message.text and "no item" in message.text
    one(page, "#message-close").click()
    assert not one(page, "#message").is_displayed()
    js(page, "location.hash = '#/'")
    wait(page, lambda d: d.find_element(By.ID, "view-search").is_displayed())


# -- recommendations --------------------------------------------------------------------------
def test_a_like_posts_an_event_and_the_list_refreshes_without_it(page):
    select = Select(one(page, "#user-select"))
    assert {o.get_attribute("value") for o in select.options} >= {"", "ana", "ben", "cleo", "dan", "eve"}
    answered(page, "#recs", lambda: select.select_by_value("ben"))
    recs = css(page, "#recs .rec")
    assert recs and "ben" in one(page, "#recs-status").text
    first = recs[0]
    assert first.find_element(By.CSS_SELECTOR, ".explanation").text
    because = first.find_element(By.CSS_SELECTOR, ".because-link")
    assert because.get_attribute("data-because-id") in page.ids.values()
    titles = {"jazz_piano_trio": "Late night jazz piano trio", "guitar_lesson": "Beginner guitar lesson",
              "rain_ambience": "Rain on the window", "football_highlights": "Football match highlights"}
    history = {page.ids[k]: v for k, v in titles.items()}  # ben's history
    wait(page, lambda d: because.text != "…")
    assert because.text == history[because.get_attribute("data-because-id")]
    assert {b.get_attribute("data-modality") for b in first.find_elements(By.CSS_SELECTOR, ".bar")} == {
        "visual", "audio", "text"}
    shot(page, "06-recommendations")

    liked = first.get_attribute("data-item-id")
    before = rec_ids(page)
    t0 = time.monotonic()
    answered(page, "#recs", lambda: first.find_element(By.CSS_SELECTOR, "button[data-event=like]").click())
    took = time.monotonic() - t0
    after = rec_ids(page)
    assert liked in before and liked not in after and after
    assert took < 2, f"the list took {took:.1f} s to refresh"
    assert "Liked" in one(page, "#toast").text
    selected = lambda d: Select(d.find_element(By.ID, "user-select")).first_selected_option.text  # noqa: E731
    wait(page, lambda d: "(5 events)" in selected(d))
    assert "5 events of history" in one(page, "#recs-status").text
    shot(page, "07-after-like")

    # skip and dislike post events too; each answer drops the item from the list
    for event in ("skip", "dislike"):
        rec = css(page, "#recs .rec")[0]
        gone = rec.get_attribute("data-item-id")
        answered(page, "#recs", lambda rec=rec, event=event: rec.find_element(
            By.CSS_SELECTOR, f"button[data-event={event}]").click())
        assert gone not in rec_ids(page)
    assert not one(page, "#message").is_displayed()


def test_interests_alone_recommend_without_events(page):
    answered(page, "#recs", lambda: Select(one(page, "#user-select")).select_by_value(""))
    assert not css(page, "#recs .rec")
    box = one(page, "#interests")
    answered(page, "#recs", lambda: box.send_keys("jazz, relaxing rain", Keys.ENTER))
    ids = rec_ids(page)
    assert ids[:2] and set(ids[:2]) == {page.ids["jazz_piano_trio"], page.ids["rain_ambience"]}
    assert all(not b.is_enabled() for b in css(page, "#recs button[data-event]"))
    shot(page, "08-interests")


def test_the_page_raised_no_script_errors(page):
    """Everything above ran without an uncaught exception in the page's script, every
    resource came from the service, and the only failed requests are the two refused on
    purpose (thumbnails aside: they are not part of these tests)."""
    logs = page.d.get_log("browser")
    errors = [e["message"] for e in logs if e["level"] == "SEVERE" and "Uncaught" in e["message"]]
    assert not errors, errors
    failed = [e["message"].split(" ", 1)[0] for e in logs if e.get("source") == "network"]
    expected = {f"{page.url}/api/search", f"{page.url}/api/items/0123456789abcdef"}
    assert {u for u in failed if "/thumbs/" not in u} <= expected, failed
    assert not [u for u in js(page, "return performance.getEntriesByType('resource').map(e => e.name)")
                if not u.startswith(page.url + "/")], "the page fetched something from elsewhere"
