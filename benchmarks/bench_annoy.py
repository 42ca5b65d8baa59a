"""Annoy against exact numpy search: recall@10, query latency, build time and memory.

Vectors are unit rows in clusters (like item embeddings), 384-d (the text tower's size).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_results

from recsys.index import AnnIndex, measure_recall


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 200), dim))
    v = centres[rng.integers(len(centres), size=n)] + 1.5 * rng.normal(size=(n, dim))  # overlapping
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _rss_mb() -> float:
    # resident memory now (not the peak), from /proc
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def run(n: int, dim: int, n_trees: int, queries: int) -> dict:
    vectors = clustered(n, dim)
    rss0 = _rss_mb()
    start = time.perf_counter()
    index = AnnIndex.build(vectors, n_trees=n_trees)
    build_s = time.perf_counter() - start
    rss1 = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "x.ann")
        file_mb = (Path(tmp) / "x.ann").stat().st_size / 2**20
    rng = np.random.default_rng(1)
    q = rng.choice(n, size=queries, replace=False)
    out = {"items": n, "dim": dim, "n_trees": n_trees, "build_s": round(build_s, 2),
           "build_rss_growth_mb": round(rss1 - rss0, 1), "index_file_mb": round(file_mb, 1)}
    for search_k in (-1, 10 * n_trees * 10, 40 * n_trees * 10):
        index.search_k = search_k
        start = time.perf_counter()
        for i in q:
            index.query(vectors[i], n=10)
        ann_ms = (time.perf_counter() - start) / queries * 1e3
        recall = measure_recall(index, vectors, k=10, sample=queries)
        out[f"search_k={search_k}"] = {"recall@10": round(recall, 4), "query_ms": round(ann_ms, 3)}
    start = time.perf_counter()
    for i in q:
        scores = vectors @ vectors[i]
        np.argpartition(-scores, 10)[:10]
    out["exact_query_ms"] = round((time.perf_counter() - start) / queries * 1e3, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rows = [run(int(n), args.dim, args.trees, args.queries) for n in args.sizes.split(",")]
    for row in rows:
        print(row)
    write_results("annoy", {"runs": rows})


if __name__ == "__main__":
    main()
