"""A large catalog from given vectors: build phases, peak memory, bundle size, list recall, latency.

Clustered synthetic vectors (items drawn around shared centres, as real catalogs cluster by
product type; never uniform random) for three modalities, given to the build as ``recsys build
--vectors`` reads them, so the towers are skipped and what is measured is the rest of the build.
Each build runs in its own process, so its peak RSS is its own.

    python benchmarks/bench_scale.py --items 100000 [--exact]

``--exact`` also builds with exact precomputed lists at the same size, for the time they cost.
Writes ``benchmarks/results/scale_<items>.json``.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_results

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
        result["hnsw_lists"]["latency"] = latency(result["hnsw_lists"].pop("version"))
        if args.exact:
            result["exact_lists"] = build(catalog, vectors, folder / "exact", exact_max=args.items)
            result["exact_lists"].pop("version")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_results(f"scale_{args.items}", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
