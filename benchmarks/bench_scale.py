"""A large catalog from given vectors: build phases, peak memory, bundle size, list recall,
latency in process and over HTTP, publish and swap.

Clustered synthetic vectors (items drawn around shared centres, as real catalogs cluster by
product type; never uniform random) for three modalities, given to the build as ``recsys build
--vectors`` reads them, so the towers are skipped and what is measured is the rest of the build.
Each build runs in its own process, so its peak RSS is its own; ``--memory-limit GIB`` runs it in a
memory cgroup of that size (page cache included), to show that it fits a machine that size.

The bundle is then published twice to the machine's Redis (``REDIS_URL``, default
127.0.0.1:6379, under a namespace of its own that is deleted afterwards): with its files in Redis
(skipped, with the reason recorded, where the bundle would take more than a third of the
machine's available memory) and with them in a file store (``redis.bundle_files``). Each gives
the publish time, what Redis holds after it, and a worker's swap: the download into its cache and
the load. Last, ``recsys serve`` (2 gunicorn workers, its bundle in a file store) answers wrk at
16 connections for 10 s per lookup kind, every request an item not asked before, after a 10 s run
of every kind that is not measured.

    apt-get install wrk
    python benchmarks/bench_scale.py --items 100000 [--users 20000] [--memory-limit 16] [--exact]

With ``--users``, each user's events are spread over ``DAYS`` days (a purchase in ``PURCHASE_SHARE``
of them, views otherwise), and the user tower is trained on them with the learned ranker
(``rank.label_days`` 1: the last day validates, the three before it train). What ranking costs
at that size is then measured: the ranker's training and the trained users' precomputed ranked
feeds (the train's ``ranker`` phase), a computed ranked feed in the process (a trained user who
clicked since training, so that no precomputed feed answers), and the precomputed ranked feeds
over HTTP.

``--exact`` also builds with exact precomputed lists at the same size, for the time they cost.
Writes ``benchmarks/results/scale_<items>.json`` (``--tag T``: ``scale_<items>_T.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from _common import write_results
from bench_api import wrk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.api.live import LiveServer  # noqa: E402

DIMS = {"image": 256, "text": 384, "tabular": 32}
ITEMS_PER_CLUSTER = 50

_BUILD = """
import json, sys
from recsys.data import load_catalog
from recsys.pipeline.build import build_item_bundle
from recsys.settings import load_settings
catalog, vectors, out, exact_max = sys.argv[1:5]
settings = load_settings(state_dir=out + "/state", index={"exact_lists_max": int(exact_max)})
report = build_item_bundle(load_catalog(catalog), settings, out + "/models/scale", vectors=vectors,
                           show_progress=False)
lists = json.loads((report.path / "manifest.json").read_text()).get("lists", {})
print(json.dumps({"path": str(report.path), "seconds": report.seconds, "phases": report.phases,
                  "annoy_recall@10": report.recall, "search_effort": report.search_effort,
                  "lists_methods": lists.get("methods"),
                  "lists_recall": report.lists_recall}))
"""

_TRAIN = """
import json, sys
from recsys.bundle import read_bundle
from recsys.data import load_interactions
from recsys.pipeline.train import train_user_tower
from recsys.settings import load_settings
version, interactions, out = sys.argv[1:4]
bundle = read_bundle(version)
report = train_user_tower(bundle, load_interactions(interactions, catalog=bundle.items),
                          load_settings(state_dir=out + "/state", rank={"label_days": 1}), show_progress=False)
print(json.dumps({"path": str(report.path), "seconds": report.seconds, "phases": report.phases,
                  "fit_seconds": report.fit_seconds, "users": report.users, "events": report.events,
                  "ranker": report.ranker}))
"""
EVENTS_PER_USER = 10
DAYS = 8
PURCHASE_SHARE = 0.3
PER_REQUEST = "weights=image:0.5,text:0.3,tabular:0.2"


def make_data(n: int, folder: Path, users: int, seed: int = 0) -> tuple[Path, Path, Path | None]:
    """A catalog CSV and a vectors folder of ``n`` items in ``n / 50`` clusters, and the
    interactions of ``users`` users: each has ``EVENTS_PER_USER`` events at random moments of
    ``DAYS`` days, most of them on items of one cluster of their own taste."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, max(1, n // ITEMS_PER_CLUSTER), n)
    vectors = folder / "vectors"
    vectors.mkdir(parents=True)
    for m, d in DIMS.items():
        centres = rng.standard_normal((cluster.max() + 1, d), dtype=np.float32)
        noise = rng.standard_normal((n, d), dtype=np.float32)
        np.save(vectors / f"{m}.npy", centres[cluster] + 0.7 * noise)
    ids = [f"I{i:07d}" for i in range(n)]
    (vectors / "item_ids.txt").write_text("\n".join(ids) + "\n")
    catalog = folder / "catalog.csv"
    with catalog.open("w") as f:
        f.write("item_id,title,category,price\n")
        for i, c in zip(ids, cluster):
            f.write(f"{i},item {i},cat/{c % 97}/{c},{10 + c % 90}\n")
    if not users:
        return catalog, vectors, None
    members = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[members], np.arange(cluster.max() + 2))
    taste = rng.integers(0, cluster.max() + 1, users)
    interactions = folder / "interactions.csv"
    with interactions.open("w") as f:
        f.write("user_id,item_id,event,timestamp\n")
        for u, c in enumerate(taste):
            own = members[starts[c]:starts[c + 1]]
            picks = rng.choice(own, min(len(own), EVENTS_PER_USER - 2), replace=False) if len(own) else []
            moments = np.sort(rng.integers(0, DAYS * 86_400, EVENTS_PER_USER))
            bought = rng.random(EVENTS_PER_USER) < PURCHASE_SHARE
            for item, moment, buy in zip(rng.permutation([*picks, *rng.integers(0, n, 2)]), moments, bought):
                f.write(f"U{u:07d},{ids[item]},{'purchase' if buy else 'view'},{1_700_000_000 + moment}\n")
    return catalog, vectors, interactions


def build(catalog: Path, vectors: Path, out: Path, exact_max: int, memory_gib: float | None = None) -> dict:
    return _child(_BUILD, catalog, vectors, out, exact_max, memory_gib=memory_gib)


def train(version: str, interactions: Path, out: Path) -> dict:
    return _child(_TRAIN, version, interactions, out)


def _child(script: str, *args, memory_gib: float | None = None) -> dict:
    """``script`` in a process of its own: what it prints, its peak RSS (``ru_maxrss``, which
    counts the mapped files' resident pages too), peak anonymous memory (sampled twice a second,
    the memory that cannot be given back to the page cache), and its bundle's size. With
    ``memory_gib``, the child runs in a memory cgroup of that limit, which its page cache counts
    against as well: finishing inside it shows that the build fits a machine of that size."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    group = _memory_cgroup(memory_gib) if memory_gib else None
    if memory_gib and group is None:
        raise SystemExit("--memory-limit needs a writable memory cgroup (v1 or v2) under this process's own")
    child = subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=(lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
                             if group else None)
    anon = 0
    while child.poll() is None:
        anon = max(anon, _anon_kib(child.pid))
        time.sleep(0.5)
    stdout, stderr = child.communicate()
    limited = _cgroup_report(group, memory_gib) if group else None
    if child.returncode:
        raise SystemExit(f"a child failed ({child.returncode}; memory cgroup: {limited}):\n{stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_anonymous_gib"] = round(anon / 2**20, 2)
    # the children's ru_maxrss is the largest child's so far: a later child reports the larger of
    # its own peak and the earlier ones'
    result["peak_rss_gib"] = round(max(peak, before) / 2**20, 2)
    version = Path(result.pop("path"))
    result["bundle_mib"] = round(sum(f.stat().st_size for f in version.rglob("*") if f.is_file()) / 2**20, 1)
    result["version"] = str(version)
    if limited:
        result["memory_cgroup"] = limited
    return result


def _memory_cgroup(limit_gib: float) -> Path | None:
    """A new memory cgroup under this process's own, limited to ``limit_gib`` (cgroup v2's
    ``memory.max`` or v1's ``memory.limit_in_bytes``), or ``None`` where none can be made."""
    limit = str(int(limit_gib * 2**30))
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, own = line.split(":", 2)
        if controllers == "":  # v2
            parent, setting = Path("/sys/fs/cgroup") / own.lstrip("/"), "memory.max"
        elif "memory" in controllers.split(","):
            parent, setting = Path("/sys/fs/cgroup/memory") / own.lstrip("/"), "memory.limit_in_bytes"
        else:
            continue
        group = parent / f"bench-scale-{os.getpid()}"
        try:
            group.mkdir(exist_ok=True)
            (group / setting).write_text(limit)
            return group
        except OSError:
            if group.exists():
                group.rmdir()
    return None


def _cgroup_report(group: Path, limit_gib: float) -> dict:
    """The limit, the cgroup's peak usage (page cache included) and how often it reached the
    limit (and so had to give back page cache); the cgroup is then removed."""
    if (group / "memory.failcnt").exists():  # v1
        peak = int((group / "memory.max_usage_in_bytes").read_text())
        hits = int((group / "memory.failcnt").read_text())
    else:
        peak = int((group / "memory.peak").read_text()) if (group / "memory.peak").exists() else 0
        events = dict(line.split() for line in (group / "memory.events").read_text().splitlines())
        hits = int(events.get("max", 0))
    group.rmdir()
    return {"limit_gib": limit_gib, "peak_gib": round(peak / 2**30, 2), "limit_hits": hits}


def _anon_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has just ended
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), 0)


def latency(version: str, queries: int = 2000, past_lists: int = 200, ranked_feeds: int = 500,
            seed: int = 0) -> dict:
    """In-process similar-items latency (ms) for the default weights (a list lookup), for
    per-request weights (re-scored from the listed cosines), and for ``k`` past the lists (150:
    candidates from the serving index, re-scored), with that answer's recall against scoring
    every item, on ``past_lists`` items. With a ranker, also ``ranked_feeds`` computed ranked
    feeds of 20 (trained users who clicked one item since), on one thread as in a server worker."""
    from threadpoolctl import threadpool_limits

    from recsys.serve import Recommender

    rec = Recommender.from_bundle(version).warm()
    out = {}
    if rec.bundle.collab is not None and rec.bundle.collab.ranker is not None:
        rng = np.random.default_rng(seed + 1)
        users = rec.bundle.collab.user_ids.ids[rng.permutation(len(rec.bundle.collab.user_ids))[:ranked_feeds]]
        clicked = rec.bundle.item_ids.ids[rng.integers(0, len(rec.bundle.item_ids), len(users))]
        times = []
        with threadpool_limits(1):
            for user, item in zip(users, clicked):
                start = time.perf_counter()
                found = rec.recommend(str(user), 20, recent_items=[str(item)])
                times.append((time.perf_counter() - start) * 1000)
                assert found.strategy == "ranked", found.strategy
        # the first feed also loads what the ranker reads (the shop's state, the taste source's reduced space)
        out["ranked feed after a click (computed)"] = {"first_ms": round(times[0], 1),
                                                       "p50_ms": round(float(np.percentile(times[1:], 50)), 3),
                                                       "p99_ms": round(float(np.percentile(times[1:], 99)), 3)}
    rng = np.random.default_rng(seed)
    items = rec.bundle.item_ids.ids[rng.integers(0, len(rec.bundle.item_ids), queries)]
    cases = {"default weights": ({}, items),
             "per-request weights": ({"weights": {"image": 2, "text": 1, "tabular": 1}}, items),
             "k 150, past the lists": ({"k": 150}, items[:past_lists])}
    answers = {}
    for name, (options, asked) in cases.items():
        times, answers[name] = [], []
        for item in asked:
            start = time.perf_counter()
            answers[name].append(rec.similar_items(item, **{"k": 10, **options}).items)
            times.append((time.perf_counter() - start) * 1000)
        out[name] = {"p50_ms": round(float(np.percentile(times, 50)), 3),
                     "p99_ms": round(float(np.percentile(times, 99)), 3)}
    exact = Recommender.from_bundle(version, exact_budget=2**62)  # every item scored
    hits = [len({s.item_id for s in got} & {s.item_id for s in exact.similar_items(item, k=150).items}) / 150
            for item, got in zip(items[:past_lists], answers["k 150, past the lists"])]
    out["k 150, past the lists"]["recall@150"] = round(float(np.mean(hits)), 4)
    return out


def publish_and_swap(version: str, folder: Path) -> dict:
    """Publish time, Redis memory, and a worker's download and load, with the bundle's files in
    Redis and in a file store."""
    from recsys.serve import Recommender
    from recsys.store import RedisStore, connect

    client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), socket_timeout=300)
    out = {}
    size = sum(f.stat().st_size for f in Path(version).rglob("*") if f.is_file())
    available = psutil.virtual_memory().available
    for name, files in (("files in Redis", None), ("files in a file store", folder / "share")):
        if files is None and size > available / 3:
            out[name] = {"skipped": f"the bundle ({size / 2**30:.1f} GiB) would take more than a third of the "
                                    f"machine's available memory ({available / 2**30:.1f} GiB) in Redis"}
            continue
        free = shutil.disk_usage(folder).free
        if files is not None and 2 * size > 0.9 * free:  # the file store's copy, and the worker's download
            out[name] = {"skipped": f"the bundle ({size / 2**30:.1f} GiB) twice would not fit on the free "
                                    f"disk ({free / 2**30:.1f} GiB)"}
            continue
        store = RedisStore(client, prefix=f"bench-scale-{os.getpid()}", bundle_files=files)
        before = client.info("memory")["used_memory"]
        try:
            started = time.perf_counter()
            published = store.publish(version)
            publish_s = time.perf_counter() - started
            redis_mib = (client.info("memory")["used_memory"] - before) / 2**20
            started = time.perf_counter()
            copy = store.download(published, folder / f"cache-{len(out)}")
            download_s = time.perf_counter() - started
            started = time.perf_counter()
            Recommender.from_bundle(copy).warm()
            load_s = time.perf_counter() - started
        finally:
            store.clear()
            shutil.rmtree(folder / f"cache-{len(out)}", ignore_errors=True)
            if files is not None:
                shutil.rmtree(files, ignore_errors=True)
        out[name] = {"publish_s": round(publish_s, 1), "redis_mib": round(redis_mib, 1),
                     "swap_download_s": round(download_s, 1), "swap_load_s": round(load_s, 1)}
    return out


def http_latency(version: str, folder: Path, seed: int = 0) -> dict:
    """p50 and p99 over HTTP of ``recsys serve`` at 16 connections, a new item (or user) in every
    request."""
    from recsys.bundle import read_bundle

    bundle = read_bundle(version)
    rng = np.random.default_rng(seed)
    items = [str(i) for i in rng.permutation(bundle.item_ids.ids)]
    users = [str(u) for u in rng.permutation(bundle.collab.user_ids.ids)] if bundle.collab else []
    server = LiveServer(folder / "serve", {"RECSYS_REDIS__BUNDLE_FILES": str(folder / "served")},
                        bundle=Path(version))
    try:
        server.wait_ready(timeout=900)
        part = len(items) // 4
        half = len(users) // 2
        # a first run pages the bundle in and starts both workers' connections; it is not measured
        wrk(server.port, [f"/v1/items/{i}/similar?k=10" for i in items[:part // 3]]
            + [f"/v1/items/{i}/similar?k=10&{PER_REQUEST}" for i in items[part // 3:2 * part // 3]]
            + [f"/v1/items/{i}/similar?k=150" for i in items[2 * part // 3:part]]
            + [f"/v1/users/{u}/recommendations?k=10" for u in users[:half]], folder, "10s")
        os.sync()  # the bundle's download is written back first: writeback would slow the reads measured
        cases = {"similar items, default weights": [f"/v1/items/{i}/similar?k=10" for i in items[part:2 * part]],
                 "similar items, per-request weights": [
                     f"/v1/items/{i}/similar?k=10&{PER_REQUEST}" for i in items[2 * part:3 * part]]}
        if users:
            name = "ranked feed, no activity since training (precomputed)" if bundle.collab.ranker is not None \
                else "feed, no activity since training"
            cases[name] = [f"/v1/users/{u}/recommendations?k=10" for u in users[half:]]
        # last: the slowest, whose requests still queued when wrk stops would delay the next case's
        cases["similar items, k 150 (serving index)"] = [f"/v1/items/{i}/similar?k=150" for i in items[3 * part:]]
        out = {}
        for name, paths in cases.items():
            run = wrk(server.port, paths, folder, "10s")
            out[name] = {k: run[k] for k in ("rps", "p50_ms", "p99_ms", "requests", "non_2xx")}
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--exact", action="store_true", help="also build with exact lists, for comparison")
    parser.add_argument("--memory-limit", type=float, default=None, metavar="GIB",
                        help="run the build in a memory cgroup of this many GiB, page cache included")
    parser.add_argument("--tag", default="", help="results file scale_<items>_<tag>.json, beside the others")
    parser.add_argument("--users", type=int, default=0, help="users whose interactions train a user tower "
                        "on the bundle (its feeds are then served too)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        started = time.perf_counter()
        catalog, vectors, interactions = make_data(args.items, folder, args.users)
        result = {"items": args.items, "dims": DIMS, "clusters": args.items // ITEMS_PER_CLUSTER,
                  "users": args.users, "events_per_user": EVENTS_PER_USER if args.users else 0,
                  "data_seconds": round(time.perf_counter() - started, 1)}

        def save() -> None:
            write_results(f"scale_{args.items}", result, args.tag)
        # the lists of a large catalog (index.exact_lists_max 0): k-means cells, and HNSW in few dimensions
        large = result["approximate_lists"] = build(catalog, vectors, folder / "approximate", exact_max=0,
                                                    memory_gib=args.memory_limit)
        version = large.pop("version")
        if interactions is not None:
            large["train"] = train(version, interactions, folder / "approximate")
            version = large["train"].pop("version")
        save()  # after each stage: a large run takes an hour, and a later stage may fail
        large["latency"] = latency(version)
        save()
        large["publish_and_swap"] = publish_and_swap(version, folder)
        save()
        large["http"] = http_latency(version, folder)
        if args.exact:
            result["exact_lists"] = build(catalog, vectors, folder / "exact", exact_max=args.items)
            result["exact_lists"].pop("version")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    save()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
