"""The serving indexes side by side: Annoy and HNSW, recall@10 against latency, build time and size.

Clustered synthetic unit vectors (``n / 50`` clusters, as in bench_scale: real catalogs cluster by
product type; never uniform random), 672 dimensions, the width of bench_scale's combined space.
Each index answers the same queries (items of the catalog, the item itself left out, as similar
items asks), one at a time in this process; recall@10 is against exact search. Annoy is swept over
``search_k`` (its default is ``n_trees * 10`` for k = 10) asking 10, and, as the service asks
it, over the search effort that the build tunes (``index.target_recall``): 100 candidates asked
(``search_k`` ``n_trees * 100 * effort``) and re-scored exactly, the best 10 kept. HNSW is swept
over ``ef_search``. Results: benchmarks/results/ann_<items>.json; with ``--ef-construction`` other
than the build's 100 (HNSW only, for its build time against its recall), ann_<items>_ef<N>.json;
with ``--only annoy``, ann_<items>_annoy.json.

    python benchmarks/bench_ann.py --items 100000 [--ef-construction 40] [--only annoy]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_results

from recsys.index.annoy import MIN_CANDIDATES, OVERFETCH, AnnIndex
from recsys.index.hnsw import HnswIndex

DIM = 672


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), DIM), dtype=np.float32)
    v = centres[rng.integers(0, len(centres), n)] + 0.7 * rng.standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def curve(index, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, settings: dict,
          fetch: int = 10) -> list[dict]:
    """recall@10 and per-query latency for each of ``settings`` (a label to a function that sets it
    and returns the ``search_k`` to ask with, or None), asking ``fetch`` candidates and keeping the
    best 10 by exact score."""
    out = []
    for label, apply in settings.items():
        search_k = apply(index)
        times, hits = [], 0
        for q, exact in zip(queries, truth):
            start = time.perf_counter()
            found, _ = index.query(vectors[q], n=fetch, exclude={int(q)}, search_k=search_k)
            if fetch > 10:
                found = found[np.argsort(-(vectors[found] @ vectors[q]), kind="stable")[:10]]
            times.append(time.perf_counter() - start)
            hits += len(set(found.tolist()) & set(exact.tolist()))
        ms = np.array(times) * 1000
        out.append({"setting": label, "recall@10": round(hits / (10 * len(queries)), 4),
                    "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)})
        print(type(index).__name__, out[-1], flush=True)
    return out


def file_mib(index, suffix: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        paths = index.save(Path(tmp) / f"x{suffix}")
        return round(sum(p.stat().st_size for p in paths) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-construction", type=int, default=100,
                        help="HNSW candidates while building; other than 100, Annoy is not run")
    parser.add_argument("--only", choices=["annoy"], help="Annoy alone (HNSW's build takes long at 1M)")
    args = parser.parse_args()
    ef_construction = args.ef_construction
    vectors = clustered(args.items)
    queries = np.random.default_rng(1).choice(args.items, args.queries, replace=False)
    scores = vectors[queries] @ vectors.T
    scores[np.arange(len(queries)), queries] = -np.inf
    truth = np.argpartition(-scores, 10, axis=1)[:, :10]
    results = {"items": args.items, "dim": DIM, "queries": args.queries}

    if ef_construction == 100:
        start = time.perf_counter()
        annoy = AnnIndex.build(vectors, n_trees=50)
        results["annoy"] = {"n_trees": 50, "build_seconds": round(time.perf_counter() - start, 1),
                            "file_mib": file_mib(annoy, ".ann"),
                            "curve": curve(annoy, vectors, queries, truth, {
                                f"search_k {k}": (lambda _, k=k: k) for k in (500, 2000, 5000, 20000, 50000)})}
        results["annoy"]["as served"] = curve(annoy, vectors, queries, truth, {
            f"search effort {e:g}": (lambda ix, e=e: setattr(ix, "search_effort", e)) for e in (1.0, 2.0, 4.0, 8.0)},
            fetch=max(MIN_CANDIDATES, OVERFETCH * 10))
    if args.only == "annoy":
        write_results(f"ann_{args.items}_annoy", results)
        return
    start = time.perf_counter()
    hnsw = HnswIndex.build(vectors, links=32, ef_construction=ef_construction)
    results["hnsw"] = {"links": 32, "ef_construction": ef_construction,
                       "build_seconds": round(time.perf_counter() - start, 1),
                       "file_mib": file_mib(hnsw, ".hnsw"),
                       "curve": curve(hnsw, vectors, queries, truth,
                                      {f"ef_search {ef}": (lambda ix, ef=ef: setattr(ix, "ef_search", ef))
                                       for ef in (16, 32, 64, 128, 256)})}
    write_results(f"ann_{args.items}" + ("" if ef_construction == 100 else f"_ef{ef_construction}"), results)


if __name__ == "__main__":
    main()
