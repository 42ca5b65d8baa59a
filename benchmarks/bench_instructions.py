"""Instructions per hot read, counted by valgrind's callgrind: a measure this noisy machine cannot blur.

Wall-clock timings of the same code here vary by 30% or more from minute to minute, which hides
the changes a request path is tuned with (a few percent each). The number of instructions a
request executes does not vary: this script counts them. It builds the shop of
``bench_api.py`` (10,000 items, 20,000 trained users) natively, then runs one worker's app in a
process under callgrind with instrumentation off, the way ``recsys serve`` runs a worker
(embedded Redis, Prometheus multi-process files, one BLAS thread), and switches counting on
only around ``REQUESTS`` requests of each case, sent through the app's WSGI entry point (the fast
path, as gunicorn calls it). An empty phase measures what switching the counting costs, and is
subtracted; the worker's thread polls Redis once an hour instead of every second, so it adds
nothing; each case's first request, which pays what a worker does once, is not counted. Each
case but the first asks queries nobody asked before, as the miss cases of ``bench_api.py`` do:

* local hit: the same similar-items query again (the worker's own cache);
* similar items, default weights (the bundle's precomputed list), and per-request weights;
* feed of a trained user without recent activity (the bundle's precomputed feed);
* feed after a one-user post (the list the post made and sent), first request and other k.

Gunicorn's own work is not counted: under load here it is about half of a lookup's time (a bare
WSGI function under the same gunicorn served 5,116 req/s, a feed lookup 2,826).

    apt-get install valgrind
    python benchmarks/bench_instructions.py  # writes benchmarks/results/bench_instructions.json
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

REQUESTS = 100  # per case: the counts are exact, so a hundred are plenty
POSTERS = REQUESTS + 1  # visitors who post two clicks in a post of their own


def main() -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind not found: apt-get install valgrind")
    from benchmarks.bench_api import build_bundle

    tmp = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    started = time.time()
    bundle = build_bundle(tmp)
    print(f"bundle {bundle} built in {time.time() - started:.0f} s; counting (about 5 minutes)",
          flush=True)
    out = tmp / "callgrind"
    out.mkdir()
    subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={out}/out.%p", sys.executable, __file__, "--worker",
                    str(bundle), str(tmp)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    counts = {}
    for dump in out.glob("out.*.*"):  # one file per phase, named by the dump's reason
        text = dump.read_text(errors="replace")
        name = re.search(r"^desc: Trigger: .*?dump (\S+)", text, re.M)
        if name is not None:
            counts[name.group(1)] = int(re.search(r"^totals: (\d+)", text, re.M).group(1))
    base = counts.pop("empty")
    results = {"config": {"requests_per_case": REQUESTS, "posters": POSTERS,
                          "harness_instructions_per_request": round(base / REQUESTS)}}
    for name, total in sorted(counts.items(), key=lambda kv: kv[1]):
        per_request = round((total - base) / REQUESTS)
        results[name.replace("_", " ")] = {"instructions": per_request}
        print(f"{name.replace('_', ' '):50s} {per_request:9,d} instructions per request", flush=True)
    path = HERE / "results" / "bench_instructions.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"written {path}")
    shutil.rmtree(tmp, ignore_errors=True)


def worker(bundle: Path, tmp: Path) -> None:
    """Runs under callgrind: one app as a gunicorn worker runs it, counted case by case."""
    metrics = tmp / "metrics"
    metrics.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)  # as recsys serve sets it
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import numpy  # noqa: F401 - load BLAS before limiting it (threadpoolctl limits loaded libraries)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as recsys serve's post_fork does
    from recsys.api import create_app
    from recsys.bundle import read_bundle
    from recsys.settings import load_settings

    # the worker's thread would poll Redis every second: once an hour, it adds nothing to the counts
    settings = load_settings(state_dir=tmp / "state", api={
        "bundle": bundle, "warm_embedder": False, "api_key": "key", "local_cache_items": 150_000,
        "poll_interval": 3600})
    app = create_app(settings)
    serving = app.extensions["recsys"]
    b = read_bundle(bundle)
    items = [str(i) for i in b.item_ids.ids]
    users = [str(u) for u in b.collab.user_ids.ids]
    client = app.test_client()
    for n in range(POSTERS):
        clicks = [{"user_id": f"poster-{n}", "item_id": items[(n + d) % len(items)]} for d in (0, 6)]
        assert client.post("/v1/interactions", json=clicks, headers={"X-API-Key": "key"}).status_code == 202
    deadline = time.monotonic() + 600  # the posts' messages come back through Redis pub/sub
    while not all(serving.memory.recent(f"poster-{n}") for n in range(POSTERS)):
        assert time.monotonic() < deadline, "the posts' messages did not arrive"
        time.sleep(0.1)

    def environ(path: str) -> dict:
        path, _, query = path.partition("?")
        return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
                "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b"")}

    def start_response(status, headers):
        assert status.startswith("200"), status

    n = REQUESTS + 1  # the first request of each case is not counted (see below)
    cases = {
        "empty": [],
        "local hit": [f"/v1/items/{items[1]}/similar?k=10"] * n,
        "similar items default weights": [f"/v1/items/{i}/similar?k=11" for i in items[:n]],
        "similar items per-request weights": [
            f"/v1/items/{i}/similar?k=11&weights=text:0.7,tabular:0.3" for i in items[:n]],
        "feed precomputed": [f"/v1/users/{u}/recommendations?k=11" for u in users[:n]],
        "feed after a one-user post first request": [
            f"/v1/users/poster-{p}/recommendations?k=10" for p in range(POSTERS)],
        "feed after a one-user post other k": [
            f"/v1/users/poster-{p}/recommendations?k=12" for p in range(POSTERS)],
    }
    pid = str(os.getpid())
    for name, paths in cases.items():
        environs = [environ(p) for p in paths]
        if environs:
            # a case's first request pays what a worker does once per endpoint (Prometheus
            # creates its labelled series, about 1 ms here): not what each request costs
            b"".join(app.wsgi_app(environs.pop(0), start_response))
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        for env in environs:
            b"".join(app.wsgi_app(env, start_response))
        subprocess.run(["callgrind_control", "-d", name.replace(" ", "_"), pid], check=True,
                       capture_output=True)
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    serving.stop()
    if serving.embedded is not None:  # the app started it; at exit nothing else would stop it
        serving.embedded.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
