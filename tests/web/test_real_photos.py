"""The demo shop and its curation admin page on real product photos: 1,000 H&M articles with their
real purchases, built, trained, served by ``recsys serve`` and looked at in Chromium (screenshots
in ``test-artifacts/browser/``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.live import LiveServer
from tests.web.test_browser import _MISSING, ARTIFACTS, cards, wait_for

HM = Path(__file__).resolve().parents[3] / "shared" / "data" / "hm-sample"
ADMIN_KEY = "admin-key-0123456789"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(_MISSING, reason="Chromium not installed"),
              pytest.mark.skipif(not (HM / "catalog.csv").is_file(), reason=f"no H&M sample at {HM}")]


@pytest.fixture(scope="module")
def hm_shop(tmp_path_factory, _image_tower, _text_tower):
    """The first 1,000 articles (by id) and the purchases of them, trained."""
    from recsys.bundle import read_bundle
    from recsys.data import load_catalog, load_interactions, validate_interactions
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower
    from tests.conftest import make_settings, train

    tmp = tmp_path_factory.mktemp("hm")
    catalog = load_catalog(HM / "catalog.csv").head(1000)
    towers = {"image": _image_tower, "text": _text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(catalog, make_settings(tmp, joint=True), tmp / "models" / "hm", source="hm-sample",
                               show_progress=False, towers=towers)
    bundle = read_bundle(report.path)
    events = load_interactions(HM / "interactions.csv")
    with pytest.warns(Warning, match="not in the catalog"):  # purchases of the other 10,800 articles
        events = validate_interactions(events, item_ids=bundle.items["item_id"], unknown_items="drop")
    return train(bundle, events, tmp)


@pytest.fixture(scope="module")
def live(hm_shop, tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("hm-live"), {"RECSYS_API__PUBLIC_INTERACTIONS": "true",
                                                             "RECSYS_API_KEY": ADMIN_KEY}, bundle=hm_shop.path)
    server.wait_ready()
    yield server
    server.stop()


def test_the_shop_shows_real_photos(browser, live, hm_shop):
    from selenium.webdriver.common.by import By

    assert hm_shop.thumbnails is not None and hm_shop.thumbnails.present().sum() == 1000
    browser.get(f"http://127.0.0.1:{live.port}/")
    wait_for(browser, lambda d: len(cards(d, "#grid")) == 24, "the grid shows a page of 24 products")
    loaded = """return performance.getEntriesByType('resource')
        .filter(e => e.name.endsWith('/image') && e.responseStatus === 200).length"""
    wait_for(browser, lambda d: d.execute_script(loaded) >= 24, "every card's photo loads")
    first = cards(browser, "#grid")[0]["itemId"]
    browser.find_element(By.CSS_SELECTOR, f'#grid .card[data-item-id="{first}"]').click()
    wait_for(browser, lambda d: len(cards(d, "#similar")) == 8, "the product page shows 8 similar items")
    wait_for(browser, lambda d: d.execute_script(loaded) >= 24 + 8, "their photos load too")
    # the browser fixture saves the screenshot: test-artifacts/browser/test_the_shop_shows_real_photos.png


def test_the_admin_page_shows_the_catalog_s_curation(browser, live, hm_shop):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"http://127.0.0.1:{live.port}/admin#/outliers")
    wait_for(browser, lambda d: "API key" in d.find_element(By.ID, "status").text, "the page asks for the key")
    browser.find_element(By.ID, "key-input").send_keys(ADMIN_KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#outliers .row")) == 50,
             "the 50 highest outlier scores are listed")
    first = browser.find_element(By.CSS_SELECTOR, "#outliers .row .facts").text
    assert first.startswith("score ") and len(first.splitlines()) >= 2, first  # a score and its reasons
    browser.save_screenshot(str(ARTIFACTS / "admin_outliers.png"))
    for view, selector, what in (("duplicates", "#duplicates .row", "duplicate groups"),
                                 ("clusters", "#map circle", "the cluster map")):
        browser.get(f"http://127.0.0.1:{live.port}/admin#/{view}")
        wait_for(browser, lambda d, s=selector: len(d.find_elements(By.CSS_SELECTOR, s)) > 0, f"{what} show")
        browser.save_screenshot(str(ARTIFACTS / f"admin_{view}.png"))
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#clusters .facts .score")]
    assert len(names) == len(set(names)) > 5 and all(names), names  # named clusters, each its own name
    browser.get(f"http://127.0.0.1:{live.port}/admin#/duplicates")
    wait_for(browser, lambda d: "groups of duplicate listings" in d.find_element(By.ID, "status").text,
             "the duplicate groups")
    groups = int(browser.find_element(By.ID, "status").text.split()[0])
    browser.find_element(By.CSS_SELECTOR, '#view input[name="sellers"]').click()
    wait_for(browser, lambda d: "other sellers' listings too" in d.find_element(By.ID, "status").text,
             "the groups with other sellers' listings")
    assert int(browser.find_element(By.ID, "status").text.split()[0]) >= groups
    browser.save_screenshot(str(ARTIFACTS / "admin_duplicates_sellers.png"))
    browser.get(f"http://127.0.0.1:{live.port}/admin#/labels")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#view textarea"), "the labels form")
    browser.find_element(By.CSS_SELECTOR, "#view form button").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#labels .row")) >= 2, "labelled items show")
    # the browser fixture saves the last view: test-artifacts/browser/test_the_admin_page_shows_...png


def test_search_by_text_and_by_photo(browser, live, hm_shop):
    """Both searches on the shop page; a photo from outside the shop's 1,000 articles (a pair of
    trousers) finds garments for the lower body."""
    import pandas as pd
    from selenium.webdriver.common.by import By

    assert hm_shop.joint is not None  # text search sees the photos
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"http://127.0.0.1:{live.port}/#/search?q=black+tights")
    wait_for(browser, lambda d: len(cards(d, "#results")) == 24, "text search shows 24 results")
    found = cards(browser, "#results")[:8]
    assert sum("tights" in c["category"] for c in found) >= 6, found
    browser.save_screenshot(str(ARTIFACTS / "search_text.png"))

    catalog = pd.read_csv(HM / "catalog.csv", dtype=str).iloc[1000:]
    trousers = catalog[catalog["category"].str.contains("/trousers")].iloc[0]
    browser.find_element(By.ID, "photo-input").send_keys(str(HM / trousers["image"]))
    shown = "const p = document.querySelector('.query-photo'); return Boolean(p && p.complete && p.naturalWidth)"
    wait_for(browser, lambda d: len(cards(d, "#results")) == 24 and d.execute_script(shown),
             "search by photo shows the photo and 24 results")
    found = cards(browser, "#results")[:8]
    assert sum("garment lower body" in c["category"] for c in found) >= 6, found
    browser.save_screenshot(str(ARTIFACTS / "search_photo.png"))


def test_the_admin_page_manages_rules_and_shows_an_experiment(browser, live, hm_shop):
    """A pin made in the Rules view leads a real feed; an experiment started in the Experiments
    view is driven by 60 shoppers over HTTP and its report shows both variants with intervals and
    plots (screenshots: test-artifacts/browser/admin_rules.png, admin_experiments.png)."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.api.live import request

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    key = {"X-API-Key": ADMIN_KEY}
    pinned = str(hm_shop.item_ids.ids[-1])
    browser.get(f"http://127.0.0.1:{live.port}/admin#/rules")
    browser.find_element(By.ID, "key-input").send_keys(ADMIN_KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "rule-form"), "the rules form")
    Select(browser.find_element(By.NAME, "action")).select_by_value("pin")
    browser.find_element(By.NAME, "position").send_keys("1")
    browser.find_element(By.NAME, "note").send_keys("winter campaign")
    match = browser.find_element(By.NAME, "match")
    match.clear()
    match.send_keys(json.dumps({"item_ids": [pinned]}))
    browser.find_element(By.CSS_SELECTOR, "#rule-form button").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rules .rule")) == 1, "the new rule is listed")
    assert "r1 pin at 1" in browser.find_element(By.CSS_SELECTOR, "#rules .rule").text
    browser.save_screenshot(str(ARTIFACTS / "admin_rules.png"))
    users = [str(u) for u in hm_shop.collab.user_ids.ids[:60]]
    feed = json.loads(request(live.port, "GET", f"/v1/users/{users[0]}/recommendations?k=6")[2])
    assert feed["items"][0]["item_id"] == pinned and "winter campaign" in feed["items"][0]["why"]["rules"][0]["text"]

    browser.get(f"http://127.0.0.1:{live.port}/admin#/experiments")
    wait_for(browser, lambda d: d.find_elements(By.ID, "experiment-form"), "the experiments form")
    browser.find_element(By.CSS_SELECTOR, "#experiment-form button").click()  # the form's example: diversity 0.3
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#experiments .experiment"), "the experiment shows")
    for n, user in enumerate(users):  # shoppers: a feed each; clicks with the read's request id, a few buy
        feed = json.loads(request(live.port, "GET", f"/v1/users/{user}/recommendations?k=6")[2])
        shown = [row["item_id"] for row in feed["items"]]
        events = [{"user_id": user, "item_id": item, "event": "click", "request_id": feed["request_id"]}
                  for item in shown[1:2 + n % 3]]
        events += [{"user_id": user, "item_id": shown[1], "event": "purchase", "value": 1}] if n % 4 == 0 else []
        assert request(live.port, "POST", "/v1/interactions", events, key)[0] == 202
    browser.refresh()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#experiments tr[data-variant]")) == 2,
             "the report lists both variants")
    rows = {r.get_attribute("data-variant"): r.text for r in
            browser.find_elements(By.CSS_SELECTOR, "#experiments tr[data-variant]")}
    assert set(rows) == {"control", "diverse"} and all("[" in text for text in rows.values()), rows  # intervals
    assert len(browser.find_elements(By.CSS_SELECTOR, "#experiments .plot polyline")) == 6  # 3 metrics x 2
    browser.save_screenshot(str(ARTIFACTS / "admin_experiments.png"))
    assert request(live.port, "POST", "/v1/experiments/e1/stop", {}, key)[0] == 200
    assert request(live.port, "DELETE", "/v1/rules/r1", headers=key)[0] == 200


def test_the_review_view_shows_a_flagged_put_beside_its_source_and_dismisses_a_flag(browser, live, hm_shop):
    """A re-upload of a real article and a blank photo, put over HTTP, are queued with their
    evidence, above what the build's checks flagged in the catalog; a flag dismissed in the view
    leaves the queue, the re-upload merged into its source from the view leaves it too and
    redirects, and the audit log names the page (screenshot: test-artifacts/browser/admin_review.png)."""
    import base64
    import io
    import json

    from PIL import Image
    from selenium.webdriver.common.by import By

    from recsys.data import load_catalog
    from tests.api.live import request

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    key = {"X-API-Key": ADMIN_KEY}
    source = load_catalog(HM / "catalog.csv").iloc[5]

    def jpeg(image) -> str:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()

    with Image.open(source["image"]) as photo:
        again = jpeg(photo.resize((photo.width // 2, photo.height // 2)))
    fields = {k: source[k] for k in ("title", "description", "category", "colour", "tags")}
    assert request(live.port, "PUT", "/v1/items/reupload", {**fields, "image": again}, key, timeout=60)[0] == 201
    blank = {"title": "Plain top", "category": source["category"], "image": jpeg(Image.new("RGB", (300, 400), "white"))}
    assert request(live.port, "PUT", "/v1/items/blank", blank, key, timeout=60)[0] == 201
    browser.get(f"http://127.0.0.1:{live.port}/admin#/review")
    browser.find_element(By.ID, "key-input").send_keys(ADMIN_KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    queued = """return Object.fromEntries([...document.querySelectorAll('#review .row[data-source="put"]')].map(
        r => [r.dataset.itemId, {cards: [...r.querySelectorAll('.card')].map(c => c.dataset.itemId),
                                 text: r.innerText}]))"""
    wait_for(browser, lambda d: len(d.execute_script(queued)) == 2, "both puts are queued")
    rows = browser.execute_script(queued)  # one read: the view may render again meanwhile
    # below them, what the build's checks found in the catalog (H&M lists colours of a style alike)
    built = browser.find_elements(By.CSS_SELECTOR, '#review .row[data-source="build"]')
    assert built and all("found at build" in row.text for row in built[:5])
    assert rows["reupload"]["cards"] == ["reupload", source["item_id"]], rows
    assert f"duplicate of {source['item_id']}" in rows["reupload"]["text"]
    assert "blank or nearly uniform photo" in rows["blank"]["text"]
    browser.save_screenshot(str(ARTIFACTS / "admin_review.png"))
    browser.execute_script("document.querySelector('#review .row[data-item-id=\"blank\"] button').click()")
    wait_for(browser, lambda d: list(d.execute_script(queued)) == ["reupload"], "the dismissed item leaves the queue")
    entry = json.loads(request(live.port, "GET", "/v1/admin/audit?limit=1", headers=key)[2])["entries"][0]
    assert (entry["action"], entry["actor"], entry["item_id"]) == ("dismiss", "admin page", "blank")
    merge = [b for b in browser.find_elements(By.CSS_SELECTOR, '#review .row[data-item-id="reupload"] button')
             if b.text == f"Merge into {source['item_id']}"]
    assert merge, "the duplicate's row offers the merge"
    merge[0].click()
    wait_for(browser, lambda d: d.execute_script(queued) == {}, "the merged listing leaves the queue")
    entry = json.loads(request(live.port, "GET", "/v1/admin/audit?limit=1", headers=key)[2])["entries"][0]
    assert (entry["action"], entry["actor"], entry["item_id"]) == ("merge", "admin page", source["item_id"])
    redirected = json.loads(request(live.port, "GET", "/v1/items/reupload")[2])["item"]
    assert (redirected["item_id"], redirected["redirected_from"]) == (source["item_id"], "reupload")
    assert request(live.port, "DELETE", "/v1/admin/merges/reupload", headers=key)[0] == 200
    for item in ("reupload", "blank"):
        assert request(live.port, "DELETE", f"/v1/items/{item}", headers=key)[0] == 200


def test_a_reviewer_sets_a_saved_tagger_s_label_from_the_review_view(browser, live, hm_shop):
    """A tagger of the department (ladieswear, menswear, ...) saved into the served bundle and
    published: each queued row offers its labels, and one chosen in Chromium is the item's label on
    every read, logged under the page's name (screenshot: test-artifacts/browser/admin_label.png)."""
    import json
    import time

    import pandas as pd
    from selenium.webdriver.common.by import By

    from recsys.bundle import read_bundle, write_tagger
    from recsys.curation.tagger import fit_tagger
    from tests.api.live import publish, request

    key = {"X-API-Key": ADMIN_KEY}
    items = hm_shop.items
    department = items["category"].str.split("/").str[0]
    kinds = department.value_counts().index[:3]
    examples = pd.concat([pd.DataFrame({"label": kind, "item_id": items["item_id"][department == kind].head(5)})
                          for kind in kinds])
    tagged = read_bundle(write_tagger(hm_shop, "department", fit_tagger(hm_shop, examples, "department",
                                                                        modality="image").to_json()))
    publish(live.redis_url, tagged.path, live.prefix)
    deadline = time.monotonic() + 30
    while json.loads(request(live.port, "GET", "/v1/admin/queue?limit=1", headers=key)[2]).get("version") \
            != tagged.version and time.monotonic() < deadline:
        time.sleep(0.2)
    browser.get(f"http://127.0.0.1:{live.port}/admin#/review")
    browser.refresh()
    if browser.find_elements(By.ID, "key-input") and browser.find_element(By.ID, "key-input").is_displayed():
        browser.find_element(By.ID, "key-input").send_keys(ADMIN_KEY)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    selects = '#review .row[data-source="build"] select[data-tagger="department"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, selects), "the rows offer the tagger's labels")
    # one script, so that a view rendering again meanwhile cannot leave stale references
    item, choice = browser.execute_script("""
        const row = document.querySelector('#review .row[data-source="build"]');
        const select = row.querySelector('select[data-tagger="department"]');
        const choice = [...select.options].map((o) => o.value).find((v) => v !== select.value && v !== arguments[0]);
        select.value = choice;
        [...row.querySelectorAll("button")].find((b) => b.textContent === "Set department").click();
        return [row.dataset.itemId, choice];""", "(none of these)")
    assert choice in kinds

    def labelled(_):
        return json.loads(request(live.port, "GET", f"/v1/items/{item}")[2])["item"].get("labels") == \
            {"department": choice}

    wait_for(browser, labelled, "the item carries the chosen label")
    selected = f'#review .row[data-item-id="{item}"] select[data-tagger="department"]'
    shown = f"const s = document.querySelector('{selected}'); return s && s.value;"
    wait_for(browser, lambda d: d.execute_script(shown) == choice, "the view shows the chosen label")
    browser.save_screenshot(str(ARTIFACTS / "admin_label.png"))
    entry = json.loads(request(live.port, "GET", "/v1/admin/audit?limit=1", headers=key)[2])["entries"][0]
    assert (entry["action"], entry["actor"], entry["item_id"], entry["after"]) == (
        "label", "admin page", item, {"department": choice})
    assert request(live.port, "DELETE", f"/v1/admin/labels/{item}/department", headers=key)[0] == 200
