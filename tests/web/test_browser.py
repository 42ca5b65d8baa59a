"""The demo shop and the embeddable widget in a real Chromium (Debian's chromium and
chromium-driver, driven by selenium) against ``recsys serve`` under gunicorn.

Screenshots go to ``test-artifacts/browser/``.
"""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from tests.api.live import LiveServer, free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
WAIT = 30

_MISSING = not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists())
if _MISSING and os.environ.get("TESTS_REQUIRE_BROWSER"):
    raise RuntimeError("TESTS_REQUIRE_BROWSER is set but Chromium is missing: "
                       "apt-get install chromium chromium-driver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    _MISSING, reason="Chromium not installed: apt-get install chromium chromium-driver (make test does it)")]


@pytest.fixture(scope="module")
def trained_shop(built, tmp_path_factory):
    """The 600-item shop with images, trained on simulated shoppers."""
    from recsys.data import load_interactions
    from tests.conftest import train

    bundle = built[1].bundle
    tmp = tmp_path_factory.mktemp("browser-shop")
    events = load_interactions("synthetic", catalog=bundle.items, seed=2, n_users=200)
    return train(bundle, events, tmp)


@pytest.fixture(scope="module")
def host_page(tmp_path_factory):
    """Another origin: a static product page of some other site, for the embeddable widget."""
    root = tmp_path_factory.mktemp("other-site")
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, port
    server.shutdown()


@pytest.fixture(scope="module")
def live(trained_shop, host_page, tmp_path_factory):
    _, other_port = host_page
    server = LiveServer(tmp_path_factory.mktemp("browser-live"), {
        "RECSYS_API__PUBLIC_INTERACTIONS": "true", "RECSYS_API__WARM_EMBEDDER": "true",
        "RECSYS_API__CORS_ORIGINS": f'["http://127.0.0.1:{other_port}"]'}, bundle=trained_shop.path)
    server.wait_ready()
    yield server
    server.stop()


def wait_for(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(lambda d: condition(d), message)


def cards(driver, selector: str) -> list[dict]:
    """The data attributes (itemId, category, colour) of the cards in ``selector``, read in one
    script call so that a list re-rendering meanwhile cannot leave stale references."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' .card')].map(c => ({...c.dataset}))", selector)


def ids(driver, selector: str) -> list[str]:
    return [c["itemId"] for c in cards(driver, selector)]


def click_card(driver, selector: str, item_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'{selector} .card[data-item-id="{item_id}"]').click()


def test_product_page_widget_and_weight_sliders(browser, live):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"http://127.0.0.1:{live.port}/")
    wait_for(browser, lambda d: len(cards(d, "#grid")) == 24, "the grid shows a page of 24 products")
    item = ids(browser, "#grid")[0]
    click_card(browser, "#grid", item)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'#product[data-item-id="{item}"]'),
             "the product page opens")
    wait_for(browser, lambda d: len(cards(d, "#similar")) == 8, "the widget shows 8 similar items")
    category = browser.find_element(By.ID, "product").get_attribute("data-category")
    assert all(c["category"] == category for c in cards(browser, "#similar"))  # "only in <category>"
    assert item not in ids(browser, "#similar")
    before = ids(browser, "#similar")
    # "looks only": the image slider to the right end, the others to the left end
    browser.find_element(By.ID, "w-image").send_keys(Keys.END)
    browser.find_element(By.ID, "w-text").send_keys(Keys.HOME)
    browser.find_element(By.ID, "w-tabular").send_keys(Keys.HOME)
    wait_for(browser, lambda d: '"image":1' in (d.find_element(By.ID, "similar").get_attribute("data-weights") or ""),
             "the widget re-queries with the slider weights")
    after = ids(browser, "#similar")
    assert len(after) == 8 and after != before
    assert browser.find_element(By.ID, "w-image-value").text == "100"


def test_an_anonymous_visitors_feed_follows_three_clicks(browser, live, trained_shop):
    from selenium.webdriver.common.by import By

    browser.get(f"http://127.0.0.1:{live.port}/")
    wait_for(browser, lambda d: d.find_element(By.ID, "feed").get_attribute("data-strategy") == "popular",
             "a new visitor gets the popular feed")
    categories = trained_shop.items["category"].str.split("/").str[0]
    department = categories.value_counts().index[-1]  # the smallest department: popularity ignores it
    clicked = []
    for n in range(3):
        browser.get(f"http://127.0.0.1:{live.port}/#/?category={department}&offset={n}")
        wait_for(browser, lambda d: (shown := cards(d, "#grid")) and all(
            c["category"].startswith(department) for c in shown), "the grid shows the department")
        clicked.append(ids(browser, "#grid")[0])
        click_card(browser, "#grid", clicked[-1])
        wait_for(browser, lambda d: d.find_elements(By.ID, "product"), "the product page opens")
    wait_for(browser, lambda d: d.find_element(By.ID, "feed").get_attribute("data-recent") == "3",
             "the feed folds in the three clicks")
    feed = browser.find_element(By.ID, "feed")
    assert feed.get_attribute("data-strategy") == "fold-in"
    shown = cards(browser, "#feed")
    assert len(shown) == 8 and not set(clicked) & set(ids(browser, "#feed"))
    # the feed over-represents the clicked department, which the popular feed before the clicks
    # left out; how much is the shop's content weight (three clicks' factors weigh in too)
    same = sum(c["category"].startswith(department) for c in shown)
    share = (categories == department).mean()
    assert same / len(shown) >= 1.5 * share, ([c["category"] for c in shown], share)
    # a click on a feed card is posted with the feed's request id (an experiment counts it)
    read = feed.get_attribute("data-request-id")
    click_card(browser, "#feed", shown[0]["itemId"])
    wait_for(browser, lambda d: read in set(_logged(live)["request_id"]), "the click carries the feed's request id")


def _logged(live):
    from recsys.store import connect
    from recsys.store.activity import ActivityStore

    return ActivityStore(connect(live.redis_url), prefix=live.prefix).log_frame(requests=True)


def test_search_for_a_colour(browser, live):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"http://127.0.0.1:{live.port}/")
    box = wait_for(browser, lambda d: d.find_element(By.ID, "search-input"), "the search box")
    box.send_keys("red", Keys.ENTER)
    wait_for(browser, lambda d: len(cards(d, "#results")) == 24, "24 results")
    colours = [c["colour"] for c in cards(browser, "#results")[:10]]
    assert colours.count("red") >= 7, colours


def test_the_embeddable_widget_on_another_site(browser, live, host_page, trained_shop):
    from selenium.webdriver.common.by import By

    root, port = host_page
    item = str(trained_shop.item_ids.ids[7])
    (root / "product.html").write_text(
        "<!doctype html><html><body><h1>Another shop</h1>"
        f'<div id="recs" data-recsys-similar="{item}" data-k="5" data-title="You may also like"></div>'
        f'<script src="http://127.0.0.1:{live.port}/widget.js" async></script></body></html>')
    browser.get(f"http://127.0.0.1:{port}/product.html")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recs .recsys-item")) == 5,
             "the widget renders 5 items across origins (CORS)")
    recs = browser.find_element(By.ID, "recs")
    assert recs.get_attribute("data-recsys-version") == trained_shop.version
    assert "You may also like" in recs.text




def test_a_ranked_feed_says_why_under_each_card(browser, tmp_path_factory):
    """A shop whose bundle has a ranker (synthetic shoppers who rebuy their staples): a trained
    user's feed cards carry the ranker's reason, and the staples say "you bought it"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.rank.shop import ranked_shop

    tmp = tmp_path_factory.mktemp("ranked-shop")
    trained = ranked_shop(tmp, n_users=500)
    server = LiveServer(tmp / "live", {}, bundle=trained.path)
    try:
        server.wait_ready()
        browser.get(f"http://127.0.0.1:{server.port}/")
        user = wait_for(browser, lambda d: d.find_element(By.ID, "user-select"), "the user picker")
        Select(user).select_by_value("U00000")
        # a visitor with no history gets a ranked feed too (the best sellers): wait for this user's
        wait_for(browser, lambda d: d.find_element(By.ID, "feed").get_attribute("data-user") == "U00000"
                 and d.find_element(By.ID, "feed").get_attribute("data-strategy") == "ranked",
                 "the trained user's feed is ranked")
        wait_for(browser, lambda d: len(cards(d, "#feed")) == 8 and d.find_elements(By.CSS_SELECTOR, "#feed .why"),
                 "the cards say why")
        reasons = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#feed .card .why")]
        assert len(reasons) >= 6 and any(r.startswith("you bought it") for r in reasons), reasons
    finally:
        server.stop()
