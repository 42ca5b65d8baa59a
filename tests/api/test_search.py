"""Search through the Flask test client over the real-photo shop (``faulty``) published to a real
Redis: by text (which sees photos through the joint space) and by photo (``POST /v1/search/image``)."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.api.test_routes import assert_error
from tests.real_shops import FASHION

pytestmark = pytest.mark.slow  # end to end over real photos: `make check` leaves it out; the library and CLI tests stay


def _top_levels(bundle, rows) -> list[str]:
    category = bundle.items.set_index("item_id")["category"].str.split("/").str[0]
    return list(category[[row["item_id"] for row in rows]])


def test_text_search_finds_photos_and_says_its_mode(faulty_client, faulty_shop):
    for mode, expected in ((None, "both"), ("image", "image"), ("text", "text")):
        body = faulty_client.get("/v1/search?q=a+pair+of+shoes&k=5" + (f"&mode={mode}" if mode else "")).json
        assert body["mode"] == expected and len(body["items"]) == 5
        if mode != "text":
            assert _top_levels(faulty_shop, body["items"]).count("footwear") >= 4, body
    filtered = faulty_client.get("/v1/search?q=a+pair+of+shoes&k=5&mode=image&category=accessories").json
    assert all(row["category"].startswith("accessories") for row in filtered["items"])


def _shoe_photo() -> bytes:
    """A real shoe photo from outside the shop's sample, as a shopper's JPEG."""
    import pandas as pd

    catalog = pd.read_csv(FASHION / "catalog.csv", dtype=str)
    shoe = catalog[catalog["category"].str.startswith("footwear/shoes")].iloc[-1]
    with Image.open(FASHION / shoe["image"]) as image:
        out = io.BytesIO()
        image.convert("RGB").resize((240, 320)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def test_a_photo_finds_items_that_look_like_it(faulty_client, faulty_shop):
    photo = _shoe_photo()
    upload = faulty_client.post("/v1/search/image?k=5", data={"image": (io.BytesIO(photo), "shoe.jpg")},
                         content_type="multipart/form-data")
    assert upload.status_code == 200, upload.json
    body = upload.json
    assert body["version"] == upload.headers["X-Recsys-Version"] == faulty_shop.version
    assert len(body["items"]) == 5 and _top_levels(faulty_shop, body["items"]).count("footwear") >= 4, body
    assert all(row["image"].startswith("/v1/items/") for row in body["items"])

    as_json = faulty_client.post("/v1/search/image?k=5",
                          json={"image": "data:image/jpeg;base64," + base64.b64encode(photo).decode()}).json
    assert [r["item_id"] for r in as_json["items"]] == [r["item_id"] for r in body["items"]]
    filtered = faulty_client.post("/v1/search/image?k=3&category=accessories",
                           data={"image": (io.BytesIO(photo), "shoe.jpg")}).json
    assert len(filtered["items"]) == 3 and set(_top_levels(faulty_shop, filtered["items"])) == {"accessories"}


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("send, status, text", [
    (lambda c: c.post("/v1/search/image", data={"photo": (io.BytesIO(b"x"), "a.jpg")}), 400, "field named 'image'"),
    (lambda c: c.post("/v1/search/image", data={"image": (io.BytesIO(b"not an image"), "a.jpg")}), 400,
     "the photo cannot be used: not a JPEG, PNG, GIF, WEBP, BMP or TIFF image"),
    (lambda c: c.post("/v1/search/image", data=b"raw bytes", content_type="image/jpeg"), 400, "multipart/form-data"),
    (lambda c: c.post("/v1/search/image", json={"image": "https://example.com/a.jpg"}), 400, "data:image/jpeg;base64"),
    (lambda c: c.post("/v1/search/image", json={"image": "data:image/png;base64,@@@"}), 400, "not valid base64"),
    (lambda c: c.post("/v1/search/image?k=0", json={}), 400, "k must be an integer"),
    (lambda c: c.post("/v1/search/image?kk=3", json={}), 400, "unknown query parameter"),
    (lambda c: c.post("/v1/search/image", data={"image": (io.BytesIO(_png(9000, 9000)), "big.png")}), 400,
     "the limit is"),
    (lambda c: c.get("/v1/search/image"), 405, "method not allowed"),
])
def test_bad_photo_searches_are_clear_4xx(faulty_client, send, status, text):
    code = {400: "invalid_request", 405: "method_not_allowed"}[status]
    assert_error(send(faulty_client), status, code, text)


def test_a_photo_over_the_size_limit_is_413(tmp_path, redis_url, redis_prefix, faulty_shop):
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    from recsys.api import create_app
    from tests.api.conftest import api_settings
    from tests.api.live import publish

    publish(redis_url, faulty_shop.path, redis_prefix)
    settings = api_settings(tmp_path, redis_url, redis_prefix)
    settings.images.max_bytes = 50_000
    app = create_app(settings)
    try:
        faulty_client = app.test_client()
        big = b"\xff\xd8" + b"\0" * 60_000
        answer = faulty_client.post("/v1/search/image", data={"image": (io.BytesIO(big), "big.jpg")})
        assert_error(answer, 413, "request_entity_too_large", "the limit is 50,000")
        # over the body limit: refused before it is read. Encoded here, in memory: the test client
        # spools a body this large to a temporary file that nothing closes when it is not read
        boundary, body = encode_multipart({"image": FileStorage(io.BytesIO(b"\0" * (2 << 20)), "big.jpg")})
        assert_error(faulty_client.post("/v1/search/image", data=body,
                                        content_type=f"multipart/form-data; boundary={boundary}"),
                     413, "request_entity_too_large", "too large")
    finally:
        app.extensions["recsys"].stop()
