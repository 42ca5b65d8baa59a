"""The feeds that training precomputes: seconds per user against a large catalog.

``feed_lists`` scores each trained user against every item (ALS factors blended with the cosine
to the user's history, as the service scores a feed) and keeps the best 100. Here: ``--items``
clustered unit vectors of 672 dimensions as bench_lists draws them (the combined width of
bench_scale), random 64-dimension factors, and ``--users`` users with 10 items each. The
function is whichever recsys comes first on the path, so the same command compares two
checkouts side by side (``PYTHONPATH=other/checkout python benchmarks/bench_feeds.py``). Equal
digests of the lists mean identical feeds; products of another shape round a score differently
in the fifth decimal, which can swap two items that nearly tie.

    python benchmarks/bench_feeds.py --items 1000000 --users 2000

Writes ``benchmarks/results/feeds_<items>.json``. With ``--grid``, it times instead what
``recsys train`` scores to choose the content weight: the best 10 of each user under every weight
of the grid in one pass (``blended_lists``, 11 weights; the choice holds out up to 1,000 users),
and writes ``feeds_<items>_grid.json`` with a digest per weight.
"""
from __future__ import annotations

import argparse
import hashlib
import time
import types

import numpy as np
import scipy.sparse as sp
from _common import write_results
from bench_lists import clustered

import recsys.pipeline.precompute as precompute
from recsys.bundle import Collab
from recsys.collab.als import UserItems
from recsys.data.ids import IdMap
from recsys.pipeline.content_weight import GRID
from recsys.towers.item import ItemVectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--grid", action="store_true", help="time the content weight's choice instead")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, users = args.items, args.users
    history = rng.integers(0, n, (users, 10))
    matrix = sp.csr_matrix((np.ones(history.size, np.float32), history.ravel(), np.arange(0, history.size + 1, 10)),
                           shape=(users, n))
    matrix.sum_duplicates()
    user_items = UserItems(user_ids=IdMap([f"U{u}" for u in range(users)], kind="user"), matrix=matrix,
                           last_seen=np.full(matrix.nnz, np.nan))
    collab = Collab(user_items=user_items, user_factors=rng.standard_normal((users, 64), dtype=np.float32),
                    item_factors=rng.standard_normal((n, 64), dtype=np.float32), item_state=np.ones(n, np.int8),
                    popularity=np.zeros(n, np.float32), index=None, params={})
    vectors = ItemVectors(blocks={}, weights={}, combined=clustered(n, 672), mask=np.ones(n, bool))
    bundle = types.SimpleNamespace(collab=collab, vectors=vectors)  # all that feed_lists reads
    started = time.perf_counter()
    if args.grid:
        lists = precompute.blended_lists(collab.user_factors, user_items, collab.item_factors, collab.item_state,
                                         vectors, 10, GRID, history_items=20)
    else:
        lists = [precompute.feed_lists(bundle, 100, content_weight=0.3, history_items=20)]
    seconds = time.perf_counter() - started
    digests = [hashlib.sha256(top.rows.tobytes()).hexdigest()[:16] for top in lists]
    result = {"items": n, "users": users, "code": precompute.__file__, "seconds": round(seconds, 1),
              "ms_per_user": round(seconds / users * 1000, 2),
              **({"weights": list(GRID), "lists_digests": digests} if args.grid else {"lists_digest": digests[0]})}
    print(result)
    write_results(f"feeds_{n}{'_grid' if args.grid else ''}", result)


if __name__ == "__main__":
    main()
