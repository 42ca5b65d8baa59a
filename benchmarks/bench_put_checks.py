"""What the checks of an arriving item cost a put, and whether they slow reads (#50).

Builds a shop of real photos (a seeded sample of fashion-products, ``--items``), serves it from two
apps over the same bundle and the same Redis (the machine's, each under its own prefix), one with
the checks on (``checks.enabled``, the default) and one with them off, and puts the same items
into both through the API, alternating which goes first: ``--puts`` products the shop does not
hold, a quarter of them replaced by re-uploads of a served item's photo (half the size, 10%
brighter, re-encoded) under a new id. Reports each side's put latency (p50, p90, p99, max) and
the ratio, how many re-uploads the duplicate check named, and similar items per second on both
apps afterwards (twice each, alternating). The first put of each app is left out of the figures:
it loads the encoders (once per process, so the first app pays it) and describes the bundle.

    .venv/bin/python benchmarks/bench_put_checks.py [--items 3000 --puts 200] [--work DIR]

``--work`` keeps the built bundle there and reuses it. Writes benchmarks/results/bench_put_checks.json.
"""
from __future__ import annotations

import argparse
import base64
import io
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.api import create_app  # noqa: E402
from recsys.bundle import read_bundle  # noqa: E402
from recsys.data import validate_catalog  # noqa: E402
from recsys.pipeline.build import build_item_bundle  # noqa: E402
from recsys.settings import load_settings  # noqa: E402
from recsys.store import RedisStore, connect  # noqa: E402

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"
KEY = "bench-key-0123456789"
REDIS = "redis://127.0.0.1:6379/0"


def data_url(image: Image.Image) -> str:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def reupload(path: str) -> str:
    with Image.open(path) as image:
        image = image.convert("RGB")
        return data_url(ImageEnhance.Brightness(image.resize((image.width // 2, image.height // 2))).enhance(1.1))


def app_for(work: Path, bundle: Path, name: str, checks: bool):
    prefix = f"bench-checks-{name}-{random.getrandbits(32):08x}"
    RedisStore(connect(REDIS), prefix=prefix).publish(bundle)
    settings = load_settings(state_dir=work / f"state-{name}", redis={"url": REDIS, "prefix": prefix},
                             api={"api_key": KEY, "warm_embedder": False}, checks={"enabled": checks})
    app = create_app(settings)
    while app.extensions["recsys"].current is None:
        time.sleep(0.05)
    return app, prefix


def percentiles(ms: list[float]) -> dict:
    values = np.array(ms)
    return {"n": len(values), "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p90_ms": round(float(np.percentile(values, 90)), 1),
            "p99_ms": round(float(np.percentile(values, 99)), 1), "max_ms": round(float(values.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--puts", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-put-checks-"))

    catalog = pd.read_csv(FASHION / "catalog.csv", dtype=str).sample(args.items + args.puts, random_state=5)
    catalog["image"] = [str(FASHION / p) for p in catalog["image"]]
    served, arriving = catalog.iloc[:args.items].reset_index(drop=True), catalog.iloc[args.items:]
    out = work / "models" / f"shop-{args.items}"
    if not any(out.glob("*/manifest.json")):  # a built version is reused
        build_item_bundle(validate_catalog(served, source="fashion sample"),
                          load_settings(state_dir=work / "state", models_dir=work / "models"), out, show_progress=True)
    bundle = read_bundle(out)

    rng = random.Random(5)
    fields = ["title", "category", "colour", "tags"]
    puts = []
    for k, row in enumerate(arriving.itertuples()):
        if k % 4 == 3:  # a re-upload of a served item's photo, under a new id
            source = served.iloc[rng.randrange(len(served))]
            body = {f: source[f] for f in fields if isinstance(source[f], str)} | {"image": reupload(source["image"])}
            puts.append((f"reupload-{k}", body, str(source["item_id"])))
        else:
            body = {f: getattr(row, f) for f in fields if isinstance(getattr(row, f), str)}
            with Image.open(row.image) as image:
                puts.append((str(row.item_id), body | {"image": data_url(image)}, None))

    apps = {"checks on": app_for(work, out, "on", True), "checks off": app_for(work, out, "off", False)}
    clients = {name: app.test_client() for name, (app, _) in apps.items()}
    for client in clients.values():  # the encoders load; the checks describe the bundle
        assert client.put("/v1/items/warm-up", json=puts[0][1], headers={"X-API-Key": KEY}).status_code in (200, 201)
    timings: dict[str, list[float]] = {name: [] for name in clients}
    named = 0
    for k, (item_id, body, source) in enumerate(puts):
        order = list(clients) if k % 2 == 0 else list(clients)[::-1]
        for name in order:
            start = time.perf_counter()
            r = clients[name].put(f"/v1/items/{item_id}", json=body, headers={"X-API-Key": KEY})
            timings[name].append(1000 * (time.perf_counter() - start))
            assert r.status_code in (200, 201), r.json
            if name == "checks on" and source is not None:
                named += source in [d["item_id"] for d in r.json["checks"]["duplicate"]["of"]]
    results = {"config": {"items": args.items, "puts": len(puts), "reuploads": len(puts) // 4,
                          "catalog": "fashion-products, seeded sample", "redis": REDIS}}
    for name, ms in timings.items():
        results[name] = percentiles(ms)
        print(name, results[name], flush=True)
    on, off = results["checks on"], results["checks off"]
    results["on / off"] = {k: round(on[k] / off[k], 3) for k in ("p50_ms", "p90_ms", "p99_ms")}
    results["re-uploads named as duplicates"] = f"{named} of {sum(s is not None for _, _, s in puts)}"
    print(results["on / off"], results["re-uploads named as duplicates"], flush=True)

    reads = [str(i) for i in bundle.item_ids.ids[:300]]
    rates: dict[str, list[float]] = {name: [] for name in clients}
    for k in (10, 11):  # another k each round: no answer is in a cache
        for name, client in clients.items():
            client.get(f"/v1/items/{reads[0]}/similar?k={k}")
            start = time.perf_counter()
            for item in reads:
                assert client.get(f"/v1/items/{item}/similar?k={k}").status_code == 200
            rates[name].append(round(len(reads) / (time.perf_counter() - start), 1))
    results["similar items per second, after the puts"] = rates
    print(rates, flush=True)
    for app, prefix in apps.values():
        app.extensions["recsys"].stop()
        client = connect(REDIS)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
    write_results("bench_put_checks", results)


if __name__ == "__main__":
    main()
