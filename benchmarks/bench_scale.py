"""A large catalog from given vectors: build phases, peak memory, bundle size, list recall,
latency in process and over HTTP, publish and swap.

Clustered synthetic vectors (items drawn around shared centres, as real catalogs cluster by
product type; never uniform random) for three modalities, given to the build as ``recsys build
--vectors`` reads them, so the towers are skipped and what is measured is the rest of the build.
Each build runs in its own process, so its peak RSS is its own.

The bundle is then published twice to the machine's Redis (``REDIS_URL``, default
127.0.0.1:6379, under a namespace of its own that is deleted afterwards): with its files in Redis
and with them in a file store (``redis.bundle_files``). Each gives the publish time, what Redis
holds after it, and a worker's swap: the download into its cache and the load. Last, ``recsys
serve`` (2 gunicorn workers, its bundle in a file store) answers wrk at 16 connections for 10 s
per lookup kind, every request an item not asked before, after a 10 s run that is not measured.

    apt-get install wrk
    python benchmarks/bench_scale.py --items 100000 [--exact]

``--exact`` also builds with exact precomputed lists at the same size, for the time they cost.
Writes ``benchmarks/results/scale_<items>.json``.
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
print(json.dumps({"path": str(report.path), "seconds": report.seconds, "phases": report.phases,
                  "annoy_recall@10": report.recall, "lists_recall": report.lists_recall}))
"""


def make_data(n: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A catalog CSV and a vectors folder of ``n`` items in ``n / 50`` clusters."""
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
    return catalog, vectors


def build(catalog: Path, vectors: Path, out: Path, exact_max: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", _BUILD, str(catalog), str(vectors), str(out), str(exact_max)],
                          check=True, capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the children's ru_maxrss is the largest child's so far: a later build reports the larger of
    # its own peak and the earlier builds'
    result["peak_rss_gib"] = round(max(peak, before) / 2**20, 2)
    version = Path(result.pop("path"))
    result["bundle_mib"] = round(sum(f.stat().st_size for f in version.rglob("*") if f.is_file()) / 2**20, 1)
    result["version"] = str(version)
    return result


def latency(version: str, queries: int = 2000, seed: int = 0) -> dict:
    """In-process similar-items latency (ms) for the default weights (a list lookup) and for
    per-request weights (re-scored from the listed cosines)."""
    from recsys.serve import Recommender

    rec = Recommender.from_bundle(version).warm()
    rng = np.random.default_rng(seed)
    items = rec.bundle.item_ids.ids[rng.integers(0, len(rec.bundle.item_ids), queries)]
    out = {}
    cases = {"default weights": None, "per-request weights": {"image": 2, "text": 1, "tabular": 1}}
    for name, weights in cases.items():
        times = []
        for item in items:
            start = time.perf_counter()
            rec.similar_items(item, k=10, weights=weights)
            times.append((time.perf_counter() - start) * 1000)
        out[name] = {"p50_ms": round(float(np.percentile(times, 50)), 3),
                     "p99_ms": round(float(np.percentile(times, 99)), 3)}
    return out


def publish_and_swap(version: str, folder: Path) -> dict:
    """Publish time, Redis memory, and a worker's download and load, with the bundle's files in
    Redis and in a file store."""
    from recsys.serve import Recommender
    from recsys.store import RedisStore, connect

    client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), socket_timeout=300)
    out = {}
    for name, files in (("files in Redis", None), ("files in a file store", folder / "share")):
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
    """p50 and p99 over HTTP of ``recsys serve`` at 16 connections, a new item in every request."""
    from recsys.bundle import read_bundle

    ids = read_bundle(version).item_ids.ids
    items = [str(i) for i in np.random.default_rng(seed).permutation(ids)]
    server = LiveServer(folder / "serve", {"RECSYS_REDIS__BUNDLE_FILES": str(folder / "served")},
                        bundle=Path(version))
    try:
        server.wait_ready(timeout=900)
        third = len(items) // 3
        # a first run pages the bundle in and starts both workers' connections; it is not measured
        wrk(server.port, [f"/v1/items/{i}/similar?k=10" for i in items[:third]], folder, "10s")
        cases = {"similar items, default weights": [f"/v1/items/{i}/similar?k=10" for i in items[third:2 * third]],
                 "similar items, per-request weights": [
                     f"/v1/items/{i}/similar?k=10&weights=image:0.5,text:0.3,tabular:0.2" for i in items[2 * third:]]}
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
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        started = time.perf_counter()
        catalog, vectors = make_data(args.items, folder)
        result = {"items": args.items, "dims": DIMS,
                  "clusters": args.items // ITEMS_PER_CLUSTER,
                  "data_seconds": round(time.perf_counter() - started, 1)}
        result["hnsw_lists"] = build(catalog, vectors, folder / "hnsw", exact_max=0)
        version = result["hnsw_lists"].pop("version")
        result["hnsw_lists"]["latency"] = latency(version)
        result["hnsw_lists"]["publish_and_swap"] = publish_and_swap(version, folder)
        result["hnsw_lists"]["http"] = http_latency(version, folder)
        if args.exact:
            result["exact_lists"] = build(catalog, vectors, folder / "exact", exact_max=args.items)
            result["exact_lists"].pop("version")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_results(f"scale_{args.items}", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
