"""One space's similar lists at a large catalog: k-means cells or an HNSW graph, time and recall;
or what the exact lists would cost on this machine.

Clustered synthetic unit vectors, drawn as bench_scale draws each modality (``n / 50`` clusters,
noise 0.7 around each centre; never uniform random), one space of ``--dim`` dimensions. The 100
best per item come from :func:`~recsys.index.cells.cell_nearest` (``--method cells``) or
:func:`~recsys.index.hnsw.hnsw_nearest` (``--method hnsw``) with their defaults, and recall@10
and recall@100 are measured against exact search on ``--sample`` items. One list of a build, on
its own, so a change to either can be measured in minutes at a million items. ``--method exact``
times 512 rows of the exact list (:func:`~recsys.index.exact.nearest`), as a build does before it
chooses exact or approximate lists (``index.exact_lists_seconds``), and scales it to every row; the
CPU it ran on is in the result (the cost differs several times between CPUs).

    python benchmarks/bench_lists.py --items 1000000 --dim 256 [--method hnsw]
    python benchmarks/bench_lists.py --items 200000 --dim 192 --method exact

Writes ``benchmarks/results/<method>_<items>_<dim>.json``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write_results

from recsys.index.cells import cell_nearest
from recsys.index.exact import nearest
from recsys.index.hnsw import hnsw_nearest
from recsys.index.lists import list_recall


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, max(1, n // 50), n)
    centres = rng.standard_normal((cluster.max() + 1, dim), dtype=np.float32)
    x = centres[cluster] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--method", choices=["cells", "hnsw", "exact"], default="cells")
    parser.add_argument("--sample", type=int, default=300, help="items whose lists are checked against exact")
    args = parser.parse_args()
    x = clustered(args.items, args.dim)
    mask = np.ones(len(x), bool)
    if args.method == "exact":
        rows = np.sort(np.random.default_rng(0).choice(args.items, 512, replace=False))
        nearest(x, mask, 100, queries=rows[:64])  # warm
        started = time.perf_counter()
        nearest(x, mask, 100, queries=rows)
        seconds = time.perf_counter() - started
        result = {"method": "exact", "items": args.items, "dim": args.dim,
                  "threads": torch.get_num_threads(), "rows_per_s": round(len(rows) / seconds),
                  "estimated_list_minutes": round(args.items * seconds / len(rows) / 60, 1)}
        print(result)
        write_results(f"exact_{args.items}_{args.dim}", result)
        return
    started = time.perf_counter()
    find = cell_nearest if args.method == "cells" else hnsw_nearest
    rows, _ = find(x, mask, 100, show_progress=True)
    seconds = time.perf_counter() - started
    recall = list_recall(x, mask, rows, ks=(10, 100), sample=args.sample)
    result = {"method": args.method, "items": args.items, "dim": args.dim, "threads": torch.get_num_threads(),
              "seconds": round(seconds, 1), "sample": args.sample, **recall}
    print(result)
    write_results(f"{args.method}_{args.items}_{args.dim}", result)


if __name__ == "__main__":
    main()
