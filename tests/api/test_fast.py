"""The WSGI fast path for the two hot reads: the same answers as Flask, and Flask for the rest."""
from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from flask import request
from werkzeug.test import Client

from tests.api.conftest import API_KEY, api_settings
from tests.api.test_routes import same_answer


def _app(tmp_path, redis_url, redis_prefix, served_bundle, **api):
    """An app whose Flask part counts the requests it sees (a hook of Flask's own)."""
    from recsys.api import create_app
    from tests.api.live import publish

    publish(redis_url, served_bundle.path, redis_prefix)
    app = create_app(api_settings(tmp_path, redis_url, redis_prefix, **api))
    app.flask_saw = []
    app.before_request(lambda: app.flask_saw.append(request.full_path.rstrip("?")))
    deadline = time.monotonic() + 10
    while not app.extensions["recsys"].subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    return app


@pytest.fixture
def fast_app(tmp_path, redis_url, redis_prefix, served_bundle):
    app = _app(tmp_path, redis_url, redis_prefix, served_bundle)
    yield app
    app.extensions["recsys"].stop()


def _paths(bundle) -> list[str]:
    item, user = str(bundle.item_ids.ids[3]), str(bundle.collab.user_ids.ids[4])
    full_category = bundle.items["category"].iloc[3]
    category = full_category.split("/")[0]
    assert "/" in full_category
    return [f"/v1/items/{item}/similar", f"/v1/items/{item}/similar?k=7",
            f"/v1/items/{item}/similar?k=12&weights=text:0.2,tabular:0.8",
            f"/v1/items/{item}/similar?k=30&category={category}&max_price=80&exclude={bundle.item_ids.ids[9]}",
            f"/v1/users/{user}/recommendations", f"/v1/users/{user}/recommendations?k=8&exclude_seen=false",
            f"/v1/users/{user}/recommendations?k=5&min_price=10", "/v1/users/nobody-yet/recommendations?k=4",
            # percent-encoded values, and bytes that are not UTF-8 (they stay percent-encoded)
            f"/v1/items/{item}/similar?k=6&category={quote(full_category, safe='')}",
            f"/v1/users/{user}/recommendations?k=3&category=%FF%2F"]


def test_the_fast_path_answers_the_hot_reads_exactly_as_flask_does(fast_app, served_bundle):
    fast, flask_only = fast_app.test_client(), Client(fast_app.wsgi_app.app)
    for n, path in enumerate(_paths(served_bundle)):
        # each path is answered first by one of the two, so both compute some and read some back
        first, second = (fast, flask_only) if n % 2 else (flask_only, fast)
        a, b = first.get(path), second.get(path)
        assert a.status_code == b.status_code == 200, (path, a.data)
        assert same_answer(a.data, b.data)
        assert {k: v for k, v in a.headers.items()} == {k: v for k, v in b.headers.items()}
        assert a.headers["X-Recsys-Version"] == served_bundle.version
    assert len(fast_app.flask_saw) == len(_paths(served_bundle))  # Flask saw only its own half
    metrics = fast.get("/metrics").get_data(as_text=True)
    for rule, count in (("/v1/items/<item_id>/similar", 10), ("/v1/users/<user_id>/recommendations", 10)):
        assert f'recsys_request_seconds_count{{endpoint="{rule}",status="200"}} {count}.0' in metrics


@pytest.mark.parametrize("path, status, code", [
    ("/v1/items/{item}/similar?k=0", 400, "invalid_request"),
    ("/v1/items/{item}/similar?kk=3", 400, "invalid_request"),
    ("/v1/items/{item}/similar?k=2&k=3", 400, "invalid_request"),
    ("/v1/items/{item}/similar?k=%FF", 400, "invalid_request"),
    ("/v1/items/{item}/similar?weights=smell:1", 400, "invalid_request"),
    ("/v1/items/no-such-item/similar", 404, "not_found"),
    ("/v1/items/%20padded/similar", 400, "invalid_request"),
    ("/v1/items/{item}/similar%0A", 404, "not_found"),
    ("/v1/users/{user}/recommendations?exclude_seen=maybe", 400, "invalid_request"),
])
def test_errors_on_the_hot_routes_are_answered_as_flask_answers_them(fast_app, served_bundle, path, status, code):
    """The fast path answers a bad request itself, with Flask's status, body and headers; a path
    that is not a hot route (a final newline) goes to Flask."""
    path = path.format(item=served_bundle.item_ids.ids[0], user=served_bundle.collab.user_ids.ids[0])
    r = fast_app.test_client().get(path)
    assert r.status_code == status and r.json["error"]["code"] == code, r.data
    assert r.headers["X-Recsys-Version"] == served_bundle.version
    flask = Client(fast_app.wsgi_app.app).get(path)
    assert (flask.status, flask.data, dict(flask.headers)) == (r.status, r.data, dict(r.headers))
    assert len(fast_app.flask_saw) == (2 if path.endswith("%0A") else 1)  # only the flask-only client's


def test_a_bug_in_the_fast_path_is_logged_counted_and_not_replayed(fast_app, served_bundle, caplog):
    serving = fast_app.extensions["recsys"]
    serving.results = None  # a defect: every hot read now raises AttributeError in the fast path
    path = f"/v1/items/{served_bundle.item_ids.ids[0]}/similar"
    r = fast_app.test_client().get(path)
    assert r.status_code == 500 and r.json["error"]["code"] == "internal_error"
    assert r.headers["X-Recsys-Version"] == served_bundle.version
    assert fast_app.flask_saw == []  # not run a second time through Flask
    assert "unexpected error in the fast path" in caplog.text and "AttributeError" in caplog.text
    metrics = fast_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'recsys_unexpected_errors_total{endpoint="/v1/items/<item_id>/similar"} 1.0' in metrics


def test_other_methods_protected_reads_and_cors_go_through_flask(
        fast_app, tmp_path, redis_url, redis_prefix, served_bundle):
    item = served_bundle.item_ids.ids[0]
    path = f"/v1/items/{item}/similar?k=3"
    assert fast_app.test_client().head(path).status_code == 200 and len(fast_app.flask_saw) == 1
    # flask-cors adds its headers to every response, with or without an Origin
    app = _app(tmp_path / "a", redis_url, redis_prefix, served_bundle,
               cors_origins=["https://shop.example"])
    client = app.test_client()
    for headers in ({"Origin": "https://shop.example"}, {}):
        r = client.get(path, headers=headers)
        assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert len(app.flask_saw) == 2
    app.extensions["recsys"].stop()
    app = _app(tmp_path / "b", redis_url, redis_prefix, served_bundle, protect_reads=True)
    client = app.test_client()
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"X-API-Key": API_KEY}).status_code == 200
    assert len(app.flask_saw) == 2
    app.extensions["recsys"].stop()


def test_the_fast_path_can_be_turned_off(tmp_path, redis_url, redis_prefix, served_bundle):
    app = _app(tmp_path, redis_url, redis_prefix, served_bundle, fast_reads=False)
    assert app.test_client().get(f"/v1/items/{served_bundle.item_ids.ids[0]}/similar").status_code == 200
    assert len(app.flask_saw) == 1
    app.extensions["recsys"].stop()
