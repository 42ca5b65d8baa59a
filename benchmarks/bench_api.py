"""HTTP benchmark: recsys endpoints vs a minimal Flask endpoint, same gunicorn config, wrk.

The ceiling is a bare Flask view returning a constant JSON body of the same size as the
similar-items response, under gunicorn with the same options ``recsys serve`` uses (2 sync
workers). Each case runs wrk (2 threads, 16 connections, 10 s) once, side by side in one run,
against one ``recsys serve`` with the default settings (result cache on):

* cache hit: 200 queries asked before, answered from the worker's own cache;
* miss: every request a query not asked before (items or users x k), so no cache can answer:
  the default similar-items query and the feed of a user without recent activity come from the
  lists precomputed in the bundle; per-request weights and a user with recent activity (folded
  in) are computed and stored in the Redis result cache.

    apt-get install wrk            # Debian's package
    python benchmarks/bench_api.py # writes benchmarks/results/bench_api.json
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.api.live import LiveServer, free_port, request  # noqa: E402

DURATION, CONNECTIONS, THREADS = "10s", 16, 2
KEY = "bench-key"


def build_bundle(tmp: Path) -> Path:
    """A 3,000-item synthetic shop (text + tabular) with its user tower."""
    from recsys.bundle import read_bundle
    from recsys.data import load_interactions, validate_catalog
    from recsys.data.synthetic import make_catalog
    from recsys.pipeline import build_item_bundle, train_user_tower
    from recsys.settings import load_settings
    from recsys.towers import create_tower

    settings = load_settings(state_dir=tmp / "state")
    catalog = validate_catalog(make_catalog(3000, seed=11), source="synthetic:3000")
    towers = {"text": create_tower("text"), "tabular": create_tower("tabular")}
    report = build_item_bundle(catalog, settings, tmp / "models" / "shop", show_progress=False, towers=towers)
    bundle = read_bundle(report.path)
    events = load_interactions("synthetic", catalog=bundle.items, seed=5, n_users=2000)
    return train_user_tower(bundle, events, settings, show_progress=False).path


def bare_app_source(body: bytes) -> str:
    return (
        "from flask import Flask, Response\n"
        "from gunicorn.app.base import BaseApplication\n"
        f"BODY = {body!r}\n"
        "app = Flask('bare')\n"
        "@app.get('/bare')\n"
        "def bare():\n"
        "    return Response(BODY, mimetype='application/json')\n"
        "class G(BaseApplication):\n"
        "    def load_config(self):\n"
        "        import json, sys\n"
        "        for k, v in json.loads(sys.argv[1]).items(): self.cfg.set(k, v)\n"
        "    def load(self): return app\n"
        "G().run()\n"
    )


def wrk(port: int, paths: list[str], tmp: Path) -> dict:
    script = tmp / "paths.lua"
    script.write_text("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
                      "i = 0\nrequest = function()\n  i = i + 1\n"
                      "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n")
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else None}


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    started = time.time()
    bundle = build_bundle(tmp)
    print(f"bundle {bundle} built in {time.time() - started:.0f} s", flush=True)
    from recsys.api.server import gunicorn_options
    from recsys.bundle import read_bundle
    from recsys.settings import load_settings

    b = read_bundle(bundle)
    items = [str(i) for i in b.item_ids.ids]
    users = [str(u) for u in b.collab.user_ids.ids]
    active = users[:500]  # they post an interaction first: their feeds are folded in
    similar = [f"/v1/items/{i}/similar?k=10" for i in items[:200]]
    feeds = [f"/v1/users/{u}/recommendations?k=10" for u in users[:200]]
    rng = random.Random(0)

    def unique(template: str, owners: list[str], ks: range) -> list[str]:
        paths = [template.format(owner, k) for owner in owners for k in ks]
        rng.shuffle(paths)
        return paths

    results = {"config": {"duration": DURATION, "connections": CONNECTIONS, "wrk_threads": THREADS,
                          "items": len(b.item_ids), "users": len(b.collab.user_ids)}}
    servers = {}
    try:
        # no PUTs here: skip loading the item encoders, which would compete with the measurements
        quiet = {"RECSYS_API__WARM_EMBEDDER": "false"}
        servers["recsys"] = LiveServer(tmp / "recsys", {**quiet, "RECSYS_API_KEY": KEY}, bundle=bundle)
        servers["recsys"].wait_ready()
        port = servers["recsys"].port
        for start in range(0, len(active), 100):
            events = [{"user_id": u, "item_id": items[(7 * n) % len(items)], "event": "click"}
                      for n, u in enumerate(active[start:start + 100])]
            assert request(port, "POST", "/v1/interactions", events, {"X-API-Key": KEY})[0] == 202
        body = request(port, "GET", similar[0])[2]
        results["config"]["payload_bytes"] = len(body)
        options = {k: v for k, v in gunicorn_options(load_settings(), "127.0.0.1", free_port()).items()
                   if not callable(v)}
        source = tmp / "bare.py"
        source.write_text(bare_app_source(body))
        bare = subprocess.Popen([sys.executable, str(source), json.dumps(options)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bare_port = int(options["bind"].rsplit(":", 1)[1])
        for _ in range(100):
            try:
                request(bare_port, "GET", "/bare")
                break
            except OSError:
                time.sleep(0.1)
        for path in similar + feeds:  # warm the caches: the hit cases then only read
            for _ in range(4):  # both workers
                request(port, "GET", path)
        cases = [("bare Flask (ceiling)", bare_port, ["/bare"]),
                 ("similar items, cache hit", port, similar),
                 ("similar items, miss, default weights (precomputed)", port,
                  unique("/v1/items/{}/similar?k={}", items, range(1, 21))),
                 ("similar items, miss, per-request weights", port,
                  unique("/v1/items/{}/similar?k={}&weights=text:0.7,tabular:0.3", items, range(1, 21))),
                 ("feed, cache hit", port, feeds),
                 ("feed, miss, no recent activity (precomputed)", port,
                  unique("/v1/users/{}/recommendations?k={}", users[500:], range(1, 31))),
                 ("feed, miss, recent activity (folded in)", port,
                  unique("/v1/users/{}/recommendations?k={}", active, range(1, 101)))]
        for name, port, paths in cases:
            results[name] = wrk(port, paths, tmp)
            print(f"{name:50s} {results[name]}", flush=True)
        bare.terminate()
        bare.wait()
    finally:
        for server in servers.values():
            server.stop()
    ceiling = results["bare Flask (ceiling)"]["rps"]
    for name, _, _ in cases[1:]:
        results[name]["share_of_ceiling"] = round(results[name]["rps"] / ceiling, 3)
    out = HERE / "results" / "bench_api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
