"""A slow or hostile image host on loopback, standing in for the remote servers an image URL names."""
from __future__ import annotations

import functools
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def jpeg(size=(40, 30), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


@functools.lru_cache(maxsize=1)
def bomb() -> bytes:
    """A PNG of a few hundred KB that decodes to 13000 x 13000 pixels."""
    out = io.BytesIO()
    Image.new("L", (13000, 13000)).save(out, format="PNG")
    return out.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.hits.append(self.path)
        path = self.path.split("?")[0]
        if path == "/photo.jpg":
            self._send(jpeg())
        elif path == "/late.jpg":  # answers whole, but only after a while
            time.sleep(self.server.delay)
            self._send(jpeg())
        elif path == "/never":  # accepts, then says nothing
            time.sleep(self.server.delay)
        elif path == "/trickle":  # one byte at a time, forever
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            for _ in range(int(self.server.delay * 10)):
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/huge":  # more bytes than any cap, without a Content-Length
            self.send_response(200)
            self.end_headers()
            chunk = b"\0" * (1 << 20)
            try:
                for _ in range(64):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif path == "/loop":
            self._redirect("/loop")
        elif path.startswith("/to/"):  # a redirect to wherever the rest of the path says
            self._redirect("http://" + path[len("/to/"):])
        elif path == "/bomb.png":
            self._send(bomb(), "image/png")
        else:
            self.send_error(404)

    def _send(self, data: bytes, kind: str = "image/jpeg") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """Say nothing: the clients hang up on purpose (deadlines, size limits), and a traceback
        printed from this thread would land in whatever output a later test is capturing."""


class HostileServer:
    """``with HostileServer(delay=5) as host: host.url("/late.jpg")``; ``hits`` lists the paths asked."""

    def __init__(self, delay: float = 5.0):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.delay = delay
        self.server.hits = []

    @property
    def hits(self) -> list[str]:
        return self.server.hits

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
