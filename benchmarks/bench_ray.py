"""The towers on Ray against the towers in this process, on real photos and texts.

Each configuration embeds the same items from scratch (no embedding cache), through
:func:`recsys.towers.cache.encode_cached` as a build does:

- ``local``: the default engine, the tower in this process with every core;
- ``ray, N workers``: :class:`recsys.towers.engines.RayEngine` on a local Ray instance, ``N`` actors
  per tower, each with ``cores / N`` threads.

Two times per Ray configuration: ``seconds`` from the call (the actors start and load their models
inside it) and ``ray_start_seconds``, starting the Ray instance itself, which a long-lived cluster
pays once. Configurations run in turn for ``--rounds`` rounds and the fastest counts: the machine's
speed drifts, so only ratios measured side by side compare. Results: benchmarks/results/ray_<items>.json.

    python benchmarks/bench_ray.py --items 600
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import write_results

from recsys.data import load_catalog
from recsys.towers.cache import encode_cached
from recsys.towers.engines import RayEngine
from recsys.towers.registry import create_tower

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _catalogs(items: int) -> dict:
    photos = load_catalog(str(DATA / "fashion-products" / "catalog.csv"), show_progress=False)
    articles = load_catalog(str(DATA / "hm-sample" / "catalog.csv"), show_progress=False)
    return {"image": photos.sample(items, random_state=0).reset_index(drop=True),
            "text": articles.sample(items, random_state=0).reset_index(drop=True)}


def _local(name: str, catalog) -> dict:
    tower = create_tower(name)
    started = time.perf_counter()
    encode_cached(tower, catalog, None, show_progress=False, save_every=128)
    return {"seconds": time.perf_counter() - started}


def _ray(name: str, catalog, workers: int) -> dict:
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    with RayEngine({name: {}}, workers=workers, cpus_per_worker=max(1, cores // workers)) as engine:
        ready = time.perf_counter()
        encode_cached(create_tower(name), catalog, None, show_progress=False, save_every=128, engine=engine)
        done = time.perf_counter()
    return {"seconds": done - ready, "ray_start_seconds": ready - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    catalogs = _catalogs(args.items)
    runs = {"local": lambda name: _local(name, catalogs[name]),
            "ray, 1 worker": lambda name: _ray(name, catalogs[name], 1),
            "ray, 2 workers": lambda name: _ray(name, catalogs[name], 2)}
    results = {}
    for name in ("image", "text"):
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for label, run in runs.items():
                measured = run(name)
                if label not in best or measured["seconds"] < best[label]["seconds"]:
                    best[label] = measured
        local = best["local"]["seconds"]
        results[name] = {label: {**{k: round(v, 1) for k, v in m.items()},
                                 "items_per_second": round(args.items / m["seconds"], 1),
                                 "vs_local": round(local / m["seconds"], 2)} for label, m in best.items()}
        for label, row in results[name].items():
            print(f"{name:5} {label:15} {row}")
    write_results(f"ray_{args.items}", {"items": args.items, "rounds": args.rounds, "towers": results})


if __name__ == "__main__":
    main()
