"""The demo shop page (``/``), the catalog curation admin page (``/admin``) and the embeddable
similar-items widget (``/widget.js``).

Plain HTML, CSS and JavaScript served by the API's own Flask app, with no build step; the page
only calls the public API, like any other client.
"""
from __future__ import annotations

from html import escape
from importlib.resources import files

from flask import Blueprint, Response, current_app

__all__ = ["bp"]

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/shop/static")
_SHOWN_USERS = 5
# the page runs only its own script and style, and shows images from this origin (and the
# shopper's own photo, which the page holds as a blob: URL)
_PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
                "frame-ancestors 'none'")


@bp.get("/")
def shop() -> Response:
    """The shop page; the user picker offers a few trained users beside the anonymous visitor."""
    current = current_app.extensions["recsys"].current
    users = []
    if current is not None and current.bundle.collab is not None:
        users = [str(u) for u in current.bundle.collab.user_ids.ids[:_SHOWN_USERS]]
    page = (files(__package__) / "static" / "index.html").read_text()
    return Response(page.replace("{users}", escape(",".join(users))), mimetype="text/html",
                    headers={"Content-Security-Policy": _PAGE_POLICY})


@bp.get("/admin")
def admin() -> Response:
    """The curation page: the browser holds the API key and sends it with each admin read."""
    page = (files(__package__) / "static" / "admin.html").read_text()
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": _PAGE_POLICY})


@bp.get("/widget.js")
def widget() -> Response:
    response = bp.send_static_file("widget.js")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
