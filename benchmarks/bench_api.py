"""HTTP benchmark: recsys endpoints vs a minimal Flask endpoint, same gunicorn config, wrk.

The ceiling is a bare Flask view returning a constant JSON body of the same size as the
similar-items response, under gunicorn with the same options ``recsys serve`` uses (2 sync
workers); a bare WSGI function under the same gunicorn shows what gunicorn alone allows. Against
one ``recsys serve`` with the default settings (result cache on), each case runs wrk (2 threads,
16 connections, 5 s) right after a run of the ceiling, whose rate it is divided by; the whole set
runs ``ROUNDS`` times and the medians are reported (this kind of machine is noisy). The two hot
reads are answered by a thin WSGI layer in front of Flask (``RECSYS_API__FAST_READS``); two cases
run against a second server with it turned off, to show what it is worth (that server makes no
feed lists at posts either, see the interaction-post cases). The shop has 10,000
items and 20,000 trained users, so that no miss case runs out of distinct queries; the servers
keep 150,000 entries in memory (``RECSYS_API__LOCAL_CACHE_ITEMS``), so that every folded-in list
the run makes stays there:

* cache hit: 200 queries asked before, answered from the worker's own cache;
* miss: every request a query nobody asked before (items or users x k; the two wrk threads take
  alternate paths and no path is asked twice), so no result cache can answer; the server's cache
  counters say how each request was answered (``answers``):
  * similar items, default weights: the bundle's precomputed list;
  * similar items, per-request weights: candidates from the bundle's per-modality lists,
    re-scored exactly (the threshold test; computed over all items when it fails);
  * feed of a trained user without recent activity: the bundle's precomputed feed;
  * feed of a user with recent activity, other k: the user's folded-in list, made at their
    first feed since the activity (asked under load before the measurement, so both workers
    keep it) and kept by the worker;
  * first feed after a one-user post: a visitor who posted two clicks in a post of their own
    before the run; the posting worker made the visitor's list and sent it with the post's
    message, so both workers look it up;
  * first feed after a batch post: a visitor never asked before, whose two clicks came in a post
    of 500 users (more than ``RECSYS_API__POST_LISTS``: no lists sent); the worker knows the
    clicks from the post's message, folds them in and makes the visitor's list (top 100), which
    it keeps. Every visitor's pair of clicks is their own, so no kept list serves another one;
* interaction post: ``POST /v1/interactions`` of two clicks by a new visitor, which makes the
  visitor's list and sends it (what the one-user-post feeds cost, paid at the post), and the same
  posts against the second server, which makes no lists.

    apt-get install wrk            # Debian's package
    python benchmarks/bench_api.py # writes benchmarks/results/bench_api.json

The shop above is served without a learned ranker (``rank.enabled`` off: the cases describe the
blend; its synthetic events are too thin at the end of their window to train one).
``python benchmarks/bench_api.py experiment`` measures the cost of an experiment: two servers of
the synthetic shop, one running an A/A experiment on feeds (every read assigned, and logged as an
impression before it is answered), the other none; each case runs on both, each right after a run
of the bare Flask ceiling, and the ratio of their shares of the ceiling is reported
(``benchmarks/results/bench_api_experiment.json``): feeds asked before (cache hits) and feeds of
users not asked before (the precomputed feed).

``python benchmarks/bench_api.py ranked BUNDLE`` measures ranked feeds instead, over a trained
bundle with a ranker (``benchmarks/results/bench_api_ranked.json``): one server ranking feeds and
one serving the blend (``RECSYS_RANK__SERVE=false``), each case a run of distinct (user, k) paths
that no cache can answer, beside a run of bare Flask, at 16 connections (throughput) and at 2,
one per worker (latency without queueing). The figures in docs/performance.md are over a whole
real week of H&M:

    recsys build --catalog ../shared/data/hm-week/catalog.csv --out models/hm-week
    RECSYS_RANK__LABEL_DAYS=1 recsys train --bundle models/hm-week \
        --interactions ../shared/data/hm-week/interactions.csv
    python benchmarks/bench_api.py ranked models/hm-week

The cases:

* ranked feed, no activity: the bundle's precomputed ranked feed of a trained user (a lookup);
* ranked feed after a click (each user of this group posted one click before the run):
  candidates from the six sources (about 200 to 300 per user), their features and the ranker,
  per request;
* ranked feed with ``explain=true``: the same and LightGBM's contributions of the listed items;
* blended feed: the bundle's precomputed feed of a trained user (a server without the ranker).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import write_results  # noqa: E402

from tests.api.live import LiveServer, free_port, request  # noqa: E402

DURATION, CONNECTIONS, THREADS = "5s", 16, 2
KS = range(5, 16)  # k around 10: bodies about the size of the ceiling's (k = 10)
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ITEMS, USERS, ACTIVE = 10_000, 20_000, 9_000  # enough distinct paths that no miss case repeats one
VISITORS = 45_000  # more than three rounds of the computed case can ask
POSTERS = 66_000  # visitors who post their own clicks before the run (their lists are sent): 22,000 a round
CLICKERS = 20_000  # per round: visitors whose posts the interaction-post cases send
LOCAL_ITEMS = 150_000  # every list the run makes stays in memory (about 100,000)
WARM_KS = (10, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90, 100)
KEY = "bench-key"


def build_bundle(tmp: Path) -> Path:
    """A synthetic shop of ``ITEMS`` items (text + tabular) with its user tower (``USERS`` users)."""
    from recsys.bundle import read_bundle
    from recsys.data import load_interactions, validate_catalog
    from recsys.data.synthetic import make_catalog
    from recsys.pipeline.build import build_item_bundle
    from recsys.pipeline.train import train_user_tower
    from recsys.settings import load_settings
    from recsys.towers import create_tower

    settings = load_settings(state_dir=tmp / "state", rank={"enabled": False})
    catalog = validate_catalog(make_catalog(ITEMS, seed=11), source=f"synthetic:{ITEMS}")
    towers = {"text": create_tower("text"), "tabular": create_tower("tabular")}
    report = build_item_bundle(catalog, settings, tmp / "models" / "shop", show_progress=False, towers=towers)
    bundle = read_bundle(report.path)
    events = load_interactions("synthetic", catalog=bundle.items, seed=5, n_users=USERS)
    return train_user_tower(bundle, events, settings, show_progress=False).path


# runs the module's ``app`` under gunicorn with the options given as JSON in argv[1]
_GUNICORN = (
    "from gunicorn.app.base import BaseApplication\n"
    "class G(BaseApplication):\n"
    "    def load_config(self):\n"
    "        import json, sys\n"
    "        for k, v in json.loads(sys.argv[1]).items(): self.cfg.set(k, v)\n"
    "    def load(self): return app\n"
    "G().run()\n"
)


def bare_app_source(body: bytes) -> str:
    """A Flask app answering ``GET /bare`` with ``body``: the ceiling."""
    return (
        "from flask import Flask, Response\n"
        f"BODY = {body!r}\n"
        "app = Flask('bare')\n"
        "@app.get('/bare')\n"
        "def bare():\n"
        "    return Response(BODY, mimetype='application/json')\n"
    ) + _GUNICORN


def bare_wsgi_source(body: bytes) -> str:
    """A bare WSGI function answering every request with ``body``: gunicorn's own limit."""
    return (
        f"BODY = {body!r}\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'application/json'),\n"
        "                              ('Content-Length', str(len(BODY)))])\n"
        "    return [BODY]\n"
    ) + _GUNICORN


def start_bare(source: str, tmp: Path, name: str) -> tuple[subprocess.Popen, int]:
    """A bare app under gunicorn with ``recsys serve``'s options; returns it and its port."""
    from recsys.api.server import gunicorn_options
    from recsys.settings import load_settings

    options = {k: v for k, v in gunicorn_options(load_settings(), "127.0.0.1", free_port()).items()
               if not callable(v)}
    path = tmp / f"{name}.py"
    path.write_text(source)
    process = subprocess.Popen([sys.executable, str(path), json.dumps(options)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = int(options["bind"].rsplit(":", 1)[1])
    for _ in range(100):
        try:
            request(port, "GET", "/bare")
            break
        except OSError:
            time.sleep(0.1)
    return process, port


def wrk(port: int, paths: list[str], tmp: Path, duration: str = DURATION, connections: int = CONNECTIONS) -> dict:
    """One wrk run over ``paths`` (GETs, or ``POST /v1/interactions`` with the body after ``POST ``);
    thread t asks paths t, t + THREADS, ... (each at most once while the list lasts)."""
    script = tmp / "paths.lua"
    script.write_text("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
                      "local threads = 0\n"
                      "function setup(thread)\n  thread:set('id', threads)\n  threads = threads + 1\nend\n"
                      "function init(args)\n  i = id\nend\n"
                      f"post = {{['Content-Type'] = 'application/json', ['X-API-Key'] = '{KEY}'}}\n"
                      "request = function()\n  local path = paths[(i % #paths) + 1]\n"
                      f"  i = i + {THREADS}\n"
                      "  if path:sub(1, 5) == 'POST ' then\n"
                      "    return wrk.format('POST', '/v1/interactions', post, path:sub(6))\n  end\n"
                      "  return wrk.format('GET', path)\nend\n")
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{duration}", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "requests": requests,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else None}


def cache_results(port: int) -> dict[str, int]:
    """The server's cache counters (all workers), ``{"endpoint/result": count}``."""
    text = request(port, "GET", "/metrics")[2].decode()
    return {f"{e}/{r}": int(float(v)) for e, r, v in
            re.findall(r'recsys_cache_total\{endpoint="(\w+)",result="(\w+)"\} ([\d.e+]+)', text)}


def median_of(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p99_ms", "share_of_ceiling")
    return {**{k: round(statistics.median(r[k] for r in runs), 3) for k in keys if k in runs[0]},
            "non_2xx": sum(r["non_2xx"] for r in runs), "repeated_paths": any(r.get("repeated") for r in runs),
            "rounds": runs}


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    started = time.time()
    bundle = build_bundle(tmp)
    print(f"bundle {bundle} built in {time.time() - started:.0f} s", flush=True)
    from recsys.bundle import read_bundle

    b = read_bundle(bundle)
    items = [str(i) for i in b.item_ids.ids]
    users = [str(u) for u in b.collab.user_ids.ids]
    active = users[:ACTIVE]  # they post an interaction first: their feeds are folded in
    visitors = [f"visitor-{n}" for n in range(VISITORS)]  # two clicks each, asked once
    posters = [f"poster-{n}" for n in range(POSTERS)]
    clickers = [f"clicker-{n}" for n in range(CLICKERS * ROUNDS)]

    def clicks(user: str, n: int, offset: int) -> list[dict]:
        """Two clicks; visitors, posters and clickers have distinct offsets, so no two share a
        pair (a kept list serves one pair of recent items)."""
        first = n % len(items)
        second = (first + offset + n // len(items)) % len(items)
        return [{"user_id": user, "item_id": items[i], "event": "click"} for i in (first, second)]
    similar = [f"/v1/items/{i}/similar?k=10" for i in items[:200]]
    feeds = [f"/v1/users/{u}/recommendations?k=10" for u in users[:200]]
    rng = random.Random(0)

    def unique(template: str, owners: list[str], ks) -> list[list[str]]:
        """Every (owner, k) path, shuffled, dealt into one disjoint list per round."""
        paths = [template.format(owner, k) for owner in owners for k in ks]
        rng.shuffle(paths)
        return [paths[r::ROUNDS] for r in range(ROUNDS)]

    results = {"config": {"duration": DURATION, "connections": CONNECTIONS, "wrk_threads": THREADS,
                          "rounds": ROUNDS, "items": len(b.item_ids), "users": len(b.collab.user_ids),
                          "active_users": ACTIVE, "visitors": VISITORS, "local_cache_items": LOCAL_ITEMS}}
    servers = {}
    try:
        # no PUTs here: skip loading the item encoders, which would compete with the measurements
        # the worker keeps 150,000 bodies and folded-in lists instead of 10,000: every list the
        # run makes (active users, posters, the first-feed and post cases) stays in memory
        quiet = {"RECSYS_API__WARM_EMBEDDER": "false", "RECSYS_API__LOCAL_CACHE_ITEMS": str(LOCAL_ITEMS)}
        servers["recsys"] = LiveServer(tmp / "recsys", {**quiet, "RECSYS_API_KEY": KEY}, bundle=bundle)
        # the second server also posts without making lists: what a post costs without them
        servers["flask only"] = LiveServer(tmp / "flask-only", {**quiet, "RECSYS_API_KEY": KEY,
                                                                "RECSYS_API__FAST_READS": "false",
                                                                "RECSYS_API__POST_LISTS": "0"}, bundle=bundle)
        servers["recsys"].wait_ready()
        servers["flask only"].wait_ready()
        port, flask_port = servers["recsys"].port, servers["flask only"].port
        events = [{"user_id": u, "item_id": items[(7 * n) % len(items)], "event": "click"}
                  for n, u in enumerate(active)]
        # two clicks per visitor, a pair no other visitor has: no two visitors share a feed
        events += [e for n, u in enumerate(visitors) for e in clicks(u, n, 1)]
        # posts of 500 users: more than RECSYS_API__POST_LISTS, so they send no lists
        for start in range(0, len(events), 1000):
            assert request(port, "POST", "/v1/interactions", events[start:start + 1000],
                           {"X-API-Key": KEY})[0] == 202
        started = time.time()
        with ThreadPoolExecutor(CONNECTIONS) as pool:  # one post per poster: each sends its list
            posted = list(pool.map(lambda n: request(port, "POST", "/v1/interactions",
                                                     clicks(posters[n], n, 6), {"X-API-Key": KEY})[0],
                                   range(len(posters))))
        assert set(posted) == {202}, set(posted)
        print(f"{len(posters)} one-user posts in {time.time() - started:.0f} s", flush=True)
        body = request(port, "GET", similar[0])[2]
        results["config"]["payload_bytes"] = len(body)
        bare, bare_port = start_bare(bare_app_source(body), tmp, "bare")
        wsgi, wsgi_port = start_bare(bare_wsgi_source(body), tmp, "wsgi")
        # warm both workers under load: the hit cases then only read, and each active user's
        # folded-in list is made (k = 10 is not among the ks the miss cases ask)
        wrk(port, similar + feeds, tmp, "5s")
        wrk(flask_port, similar, tmp, "5s")
        # each active user twelve times (k = 10 to 100, none of the measured ks): both workers
        # make the user's list, but for about 2 * 2**-12 of the users
        wrk(port, [f"/v1/users/{u}/recommendations?k={k}" for k in WARM_KS for u in active], tmp, "60s")
        default_misses = unique("/v1/items/{}/similar?k={}", items, [k for k in KS if k != 10])
        posts = ["POST " + json.dumps(clicks(u, n, 11)) for n, u in enumerate(clickers)]
        cases = [("bare Flask (ceiling)", bare_port, [["/bare"]] * ROUNDS, False),
                 ("bare WSGI, same gunicorn", wsgi_port, [["/bare"]] * ROUNDS, False),
                 ("similar items, cache hit", port, [similar] * ROUNDS, False),
                 ("similar items, cache hit, Flask only (no fast path)", flask_port, [similar] * ROUNDS, False),
                 ("similar items, miss, default weights (precomputed)", port, default_misses, True),
                 ("similar items, miss, default weights, Flask only (no fast path)", flask_port,
                  default_misses, True),
                 ("similar items, miss, per-request weights (modality lists)", port,
                  unique("/v1/items/{}/similar?k={}&weights=text:0.7,tabular:0.3", items, KS), True),
                 ("feed, cache hit", port, [feeds] * ROUNDS, False),
                 ("feed, miss, no recent activity (precomputed)", port,
                  unique("/v1/users/{}/recommendations?k={}", users[ACTIVE:], KS), True),
                 ("feed, miss, recent activity, other k (kept list)", port,
                  unique("/v1/users/{}/recommendations?k={}", active, [k for k in KS if k != 10]), True),
                 ("feed, first request after a one-user post (list sent with the post)", port,
                  unique("/v1/users/{}/recommendations?k={}", posters, range(10, 11)), True),
                 ("feed, first request after a batch post (computed: list made)", port,
                  unique("/v1/users/{}/recommendations?k={}", visitors, range(10, 11)), True),
                 ("interaction post, one user, two clicks (list made and sent)", port,
                  [posts[r * CLICKERS:(r + 1) * CLICKERS] for r in range(ROUNDS)], True),
                 ("interaction post, one user, two clicks, no list (RECSYS_API__POST_LISTS=0)", flask_port,
                  [posts[r * CLICKERS:(r + 1) * CLICKERS] for r in range(ROUNDS)], True)]
        runs: dict[str, list[dict]] = {name: [] for name, *_ in cases}
        for r in range(ROUNDS):
            for name, case_port, paths, fresh in cases[1:]:
                # the ceiling right before each case: the share compares runs seconds apart (this
                # machine's speed drifts by 10 to 30% within minutes)
                ceiling = wrk(bare_port, ["/bare"], tmp)
                runs[cases[0][0]].append(ceiling)
                served = case_port if case_port in (port, flask_port) else port
                before = cache_results(served)
                run = wrk(case_port, paths[r], tmp)
                after = cache_results(served)
                # how the server answered: lookup, local (worker memory), hit (Redis), miss (computed)
                run["answers"] = {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}
                run["repeated"] = fresh and run["requests"] > len(paths[r])
                run["ceiling_rps"] = ceiling["rps"]
                run["share_of_ceiling"] = round(run["rps"] / ceiling["rps"], 3)
                runs[name].append(run)
                print(f"round {r + 1} {name:58s} {run}", flush=True)
        for process in (bare, wsgi):
            process.terminate()
            process.wait()
    finally:
        for server in servers.values():
            server.stop()
    for name, *_ in cases:
        results[name] = median_of(runs[name])
        print(f"{name:58s} rps {results[name]['rps']:8.0f}  share {results[name].get('share_of_ceiling', 1):.2f}"
              f"  p99 {results[name]['p99_ms']:.1f} ms", flush=True)
    out = HERE / "results" / "bench_api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out}")
    shutil.rmtree(tmp, ignore_errors=True)


def ranked(path: str) -> None:
    """Ranked feeds beside blended ones and bare Flask over the trained bundle at ``path`` (see
    the module's docstring)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    from recsys.bundle import read_bundle

    tmp = Path(tempfile.mkdtemp(prefix="bench-ranked-"))
    b = read_bundle(path)
    bundle = b.path
    if b.collab is None or b.collab.ranker is None:
        sys.exit(f"no ranker in {bundle}: " + str((b.manifest.get("collab") or {}).get("ranker", "no user tower")))
    users = [str(u) for u in b.collab.user_ids.ids]
    rng = random.Random(0)

    def unique(owners: list[str], extra: str = "") -> list[list[str]]:
        paths = [f"/v1/users/{u}/recommendations?k={k}{extra}" for u in owners for k in KS]
        rng.shuffle(paths)
        return [paths[r::ROUNDS] for r in range(ROUNDS)]

    quarter = len(users) // 4
    groups = [users[g * quarter:(g + 1) * quarter] for g in range(4)]
    items = [str(i) for i in b.item_ids.ids]
    results = {"config": {"duration": DURATION, "wrk_threads": THREADS, "rounds": ROUNDS, "items": len(b.item_ids),
                          "users": len(users), "ranker": b.manifest["collab"]["ranker"]}}
    quiet = {"RECSYS_API__WARM_EMBEDDER": "false", "RECSYS_API_KEY": KEY}
    servers = {"ranked": LiveServer(tmp / "ranked", quiet, bundle=bundle),
               "blend": LiveServer(tmp / "blend", {**quiet, "RECSYS_RANK__SERVE": "false"}, bundle=bundle)}
    try:
        for server in servers.values():
            server.wait_ready()
        ranked_port, blend_port = servers["ranked"].port, servers["blend"].port
        status, _, body = request(ranked_port, "GET", f"/v1/users/{users[0]}/recommendations?k=10")
        assert status == 200 and json.loads(body)["strategy"] == "ranked", body[:300]
        bare, bare_port = start_bare(bare_app_source(body), tmp, "bare")
        wrk(ranked_port, [f"/v1/users/{u}/recommendations?k=20" for u in users[:500]], tmp, "5s")  # warm
        # the second group clicks once: their feeds are ranked per request, the click first
        clicks = [{"user_id": u, "item_id": items[(7 * n) % len(items)], "event": "click"}
                  for n, u in enumerate(groups[1])]
        for start in range(0, len(clicks), 1000):
            posted = request(ranked_port, "POST", "/v1/interactions", clicks[start:start + 1000], {"X-API-Key": KEY})
            assert posted[0] == 202, posted
        cases = [("ranked feed, miss, no activity (precomputed)", ranked_port, unique(groups[0])),
                 ("ranked feed, miss, after a click (computed)", ranked_port, unique(groups[1])),
                 ("ranked feed with explain=true, miss (computed)", ranked_port, unique(groups[2], "&explain=true")),
                 ("blended feed, miss (precomputed)", blend_port, unique(groups[3]))]
        runs: dict[str, list[dict]] = {}
        for r in range(ROUNDS):
            for connections in (CONNECTIONS, 2):
                for name, case_port, paths in cases:
                    label = f"{name}, {connections} connections"
                    ceiling = wrk(bare_port, ["/bare"], tmp, connections=connections)
                    runs.setdefault(f"bare Flask (ceiling), {connections} connections", []).append(ceiling)
                    half = len(paths[r]) // 2  # each connection count its own paths
                    mine = paths[r][:half] if connections == CONNECTIONS else paths[r][half:]
                    run = wrk(case_port, mine, tmp, connections=connections)
                    run["repeated"] = run["requests"] > len(mine)
                    run["ceiling_rps"] = ceiling["rps"]
                    run["share_of_ceiling"] = round(run["rps"] / ceiling["rps"], 3)
                    runs.setdefault(label, []).append(run)
                    print(f"round {r + 1} {label:52s} {run}", flush=True)
        bare.terminate()
        bare.wait()
    finally:
        for server in servers.values():
            server.stop()
    for name, measured in runs.items():
        results[name] = median_of(measured)
        print(f"{name:58s} rps {results[name]['rps']:8.0f}  share {results[name].get('share_of_ceiling', 1):.2f}"
              f"  p50 {results[name]['p50_ms']:.1f} ms  p99 {results[name]['p99_ms']:.1f} ms", flush=True)
    write_results("bench_api_ranked", results)
    shutil.rmtree(tmp, ignore_errors=True)


def experiment() -> None:
    """Reads inside an experiment beside the same reads outside one (see the module's docstring)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="bench-experiment-"))
    bundle = build_bundle(tmp)
    from recsys.bundle import read_bundle

    users = [str(u) for u in read_bundle(bundle).collab.user_ids.ids]
    rng = random.Random(0)
    rng.shuffle(users)
    quiet = {"RECSYS_API__WARM_EMBEDDER": "false", "RECSYS_API_KEY": KEY}
    servers = {"outside": LiveServer(tmp / "outside", quiet, bundle=bundle),
               "inside": LiveServer(tmp / "inside", quiet, bundle=bundle)}
    results = {"config": {"duration": DURATION, "wrk_threads": THREADS, "rounds": ROUNDS, "items": ITEMS,
                          "users": USERS, "experiment": "A/A on feeds: two variants of the service's own "
                          "configuration; every read logged as an impression"}}
    try:
        for server in servers.values():
            server.wait_ready()
        spec = {"name": "A/A", "variants": [{"name": "a"}, {"name": "b"}]}
        status, _, body = request(servers["inside"].port, "POST", "/v1/experiments", spec, {"X-API-Key": KEY})
        assert status == 201, body
        status, _, body = request(servers["inside"].port, "GET", f"/v1/users/{users[0]}/recommendations?k=10")
        assert status == 200 and json.loads(body)["experiment"]["id"] == "e1", body[:300]
        bare, bare_port = start_bare(bare_app_source(body), tmp, "bare")
        hits = [f"/v1/users/{u}/recommendations?k=10" for u in users[:200]]
        for server in servers.values():
            wrk(server.port, hits, tmp, "3s")  # asked before: the hit case
        per_round = (len(users) - 200) // ROUNDS
        runs: dict[str, list[dict]] = {}
        for r in range(ROUNDS):
            owners = users[200 + r * per_round:200 + (r + 1) * per_round]  # each server misses them: its own cache
            fresh = [f"/v1/users/{u}/recommendations?k=10" for u in owners]
            for case, paths in (("feed, cache hit", hits), ("feed, miss (precomputed)", fresh)):
                for where in ("outside", "inside"):
                    ceiling = wrk(bare_port, ["/bare"], tmp)
                    run = wrk(servers[where].port, paths, tmp)
                    run["share_of_ceiling"] = round(run["rps"] / ceiling["rps"], 3)
                    runs.setdefault(f"{case}, {where} an experiment", []).append(run)
                    print(f"round {r + 1} {case}, {where}: {run}", flush=True)
        bare.terminate()
        bare.wait()
    finally:
        for server in servers.values():
            server.stop()
    for name, measured in runs.items():
        results[name] = median_of(measured)
    for case in ("feed, cache hit", "feed, miss (precomputed)"):
        inside, outside = results[f"{case}, inside an experiment"], results[f"{case}, outside an experiment"]
        results[f"{case}: inside / outside"] = {
            "share_of_ceiling": round(inside["share_of_ceiling"] / outside["share_of_ceiling"], 3),
            "p99": round(inside["p99_ms"] / outside["p99_ms"], 3)}
        print(case, results[f"{case}: inside / outside"], flush=True)
    write_results("bench_api_experiment", results)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if sys.argv[1:2] == ["ranked"]:
        ranked(sys.argv[2])
    elif sys.argv[1:2] == ["experiment"]:
        experiment()
    else:
        main()
