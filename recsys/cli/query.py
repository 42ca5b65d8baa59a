"""The query commands: ``recsys similar | search | recommend | items`` over a built bundle, as
tables or ``--json``."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from recsys.cli._context import settings_of
from recsys.serve.queries import FEED_K, SEARCH_K, SIMILAR_K
from recsys.settings import Settings

__all__ = ["similar", "search", "recommend", "items"]

_DISPLAY = ["title", "category", "price"]
ANONYMOUS = "anonymous"  # the key of a --recent-only feed in the output


def _load(bundle: Path, settings: Settings):
    from recsys.serve import Recommender

    return Recommender.from_bundle(bundle, settings)


def _filter_options(command):
    """The filter options every query command shares."""
    options = [
        click.option("--category", default=None, help="category path prefix, e.g. women/shoes"),
        click.option("--min-price", type=float, default=None, help="lowest price (inclusive)"),
        click.option("--max-price", type=float, default=None, help="highest price (inclusive)"),
        click.option("--include", default=None, metavar="ID,ID", help="only these items"),
        click.option("--exclude", default=None, metavar="ID,ID", help="never these items"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _split_ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _item_filter(category, min_price, max_price, include, exclude):
    from recsys.serve.filters import ItemFilter

    return ItemFilter.create(category=category, min_price=min_price, max_price=max_price,
                             include=_split_ids(include), exclude=_split_ids(exclude))


def _rows(recommender, scored, cold: bool = False) -> list[dict]:
    """The API's result rows without the image (an API path, meaningless outside the server)."""
    rows = recommender.rows(scored, cold=cold)
    for row in rows:
        row.pop("image", None)
    return rows


def _print_table(title: str, rows: list[dict], empty: str) -> None:
    click.echo(f"\n{title}")
    if rows:
        whys = [row.pop("why", None) for row in rows]
        frame = pd.DataFrame(rows)
        frame.index = range(1, len(frame) + 1)
        click.echo(frame.to_string(max_colwidth=48, na_rep=""))  # an unpriced item shows no price, not NaN
        if any(why is not None for why in whys):
            click.echo("why:")
            for place, why in enumerate(whys, 1):
                reasons = "; ".join(r["text"] for r in why["reasons"]) or "-"
                click.echo(f"  {place:>3}. {reasons} (from {', '.join(why['sources'])})")
    else:
        click.echo(f"  ({empty})")


@click.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.argument("item_ids", nargs=-1)
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a photo to find similar items for (visual search); may be repeated")
@click.option("--k", default=SIMILAR_K, show_default=True, type=int, help="neighbours per item (1..1000)")
@click.option("--weights", default=None, metavar="SPEC",
              help="per-request modality weights, e.g. image:0.6,text:0.3,tabular:0.1")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def similar(ctx: click.Context, bundle: Path, item_ids: tuple[str, ...], images: tuple[str, ...], k: int,
            weights: str | None, category, min_price, max_price, include, exclude, as_json: bool) -> None:
    """Items most similar to each ITEM_ID, or to each photo given with --image."""
    from recsys.towers.item import parse_weights

    if not item_ids and not images:
        raise click.UsageError("give at least one ITEM_ID, or a photo with --image PATH")
    if images and weights:
        raise click.UsageError("--weights applies to ITEM_IDs; a photo is compared by the image modality alone")
    recommender = _load(bundle, settings_of(ctx))
    item_filter = _item_filter(category, min_price, max_price, include, exclude)
    parsed = parse_weights(weights, tuple(recommender.bundle.vectors.blocks)) if weights else None
    results = {i: _rows(recommender, recommender.similar_items(i, k=k, weights=parsed, filters=item_filter))
               for i in item_ids}
    results.update({path: _rows(recommender, recommender.similar_to_photo(path, k=k, filters=item_filter))
                    for path in images})
    if as_json:
        # the weights are the items' only: a photo is compared by the image modality alone
        weighted = {"weights": parsed or recommender.bundle.vectors.weights} if item_ids else {}
        click.echo(json.dumps({"version": recommender.version, **weighted, "filters": item_filter.describe(),
                               "results": results}, indent=1))
        return
    for key, rows in results.items():
        if key in item_ids:
            meta = recommender.item(key)
            label = " | ".join(str(meta[c]) for c in _DISPLAY if meta.get(c) not in (None, ""))
            _print_table(f"similar to {key}: {label}", rows, "no similar items")
        else:
            _print_table(f"similar to the photo {key}", rows, "no similar items")


@click.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.argument("queries", nargs=-1, required=True)
@click.option("--mode", type=click.Choice(["text", "image", "both"]), default=None,
              help="compare the query with the items' text, their photos (the joint text-image space), or "
                   "both [default: both where the bundle has a joint space, else text]")
@click.option("--k", default=SEARCH_K, show_default=True, type=int, help="items per query (1..1000)")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def search(ctx: click.Context, bundle: Path, queries: tuple[str, ...], mode: str | None, k: int,
           category, min_price, max_price, include, exclude, as_json: bool) -> None:
    """Items for each free-text QUERY ("red floral summer dress")."""
    if any(not q.strip() for q in queries):  # as the API's ?q=: an empty query matches nothing in particular
        raise click.UsageError("a QUERY is empty: give the words to search for, e.g. \"red dress\"")
    recommender = _load(bundle, settings_of(ctx))
    item_filter = _item_filter(category, min_price, max_price, include, exclude)
    mode = mode or recommender.search_mode
    results = {q: _rows(recommender, recommender.search(q, k=k, filters=item_filter, mode=mode)) for q in queries}
    if as_json:
        click.echo(json.dumps({"version": recommender.version, "mode": mode, "filters": item_filter.describe(),
                               "results": results}, indent=1))
        return
    for query, rows in results.items():
        _print_table(f"{query!r} ({mode})", rows, "no items match")


@click.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a trained bundle version directory, or models/NAME for the newest")
@click.argument("user_ids", nargs=-1)
@click.option("--k", default=FEED_K, show_default=True, type=int, help="items per feed (1..1000)")
@click.option("--recent", default=None, metavar="ID,ID",
              help="items touched since training, most recent first; alone: an anonymous session")
@click.option("--include-seen/--exclude-seen", default=None,
              help="keep (or leave out) items the user already had; default: settings.rank.exclude_seen "
              "(false) for ranked feeds, settings.collab.exclude_seen (true) for blended ones")
@click.option("--explain", is_flag=True, help="say under each item why it is there (docs/ranking.md)")
@click.option("--users-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="more user ids, one per line")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the feeds to this CSV (user_id, rank, item_id, score) instead of printing them: "
              "one batch call, ranked feeds in blocks of users")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def recommend(ctx: click.Context, bundle: Path, user_ids: tuple[str, ...], k: int, recent: str | None,
              include_seen: bool | None, explain: bool, users_file: Path | None, out: Path | None, category,
              min_price, max_price, include, exclude, as_json: bool) -> None:
    """Personalised feeds for each USER_ID (or for an anonymous session with --recent only)."""
    recent_items = _split_ids(recent)
    if users_file is not None:
        user_ids = user_ids + tuple(line.strip() for line in users_file.read_text().splitlines() if line.strip())
    if not user_ids and not recent_items:
        raise click.UsageError("give at least one USER_ID, or --recent ITEM,ITEM for an anonymous session")
    recommender = _load(bundle, settings_of(ctx))
    item_filter = _item_filter(category, min_price, max_price, include, exclude)
    exclude_seen = None if include_seen is None else not include_seen
    if out is not None:
        _write_feeds(recommender, out, list(user_ids) or [None], k, recent_items, exclude_seen, item_filter)
        return
    feeds = {user: recommender.recommend(None if user == ANONYMOUS else user, k=k,
                                         recent_items=recent_items, exclude_seen=exclude_seen,
                                         filters=item_filter, explain=explain)
             for user in (user_ids or (ANONYMOUS,))}
    results = {user: _rows(recommender, feed, cold=True) for user, feed in feeds.items()}
    if as_json:
        click.echo(json.dumps({
            "version": recommender.version, "k": k, "filters": item_filter.describe(),
            "results": results,
            "strategy": {user: feed.strategy for user, feed in feeds.items()},
            "messages": {user: feed.message for user, feed in feeds.items() if feed.message},
        }, indent=1))
        return
    for user, feed in feeds.items():
        if feed.message:
            click.echo(f"note: {feed.message}", err=True)
        _print_table(f"feed for {user} ({feed.strategy})", results[user], "no items match")


def _write_feeds(recommender, out: Path, users: list[str | None], k: int, recent_items: list[str],
                 exclude_seen: bool | None, item_filter) -> None:
    import time

    import numpy as np

    started = time.perf_counter()
    ids, scores = recommender.recommend(users, k=k, recent_items=[recent_items] * len(users) if recent_items else (),
                                        exclude_seen=exclude_seen, filters=item_filter)
    frame = pd.DataFrame({"user_id": np.repeat(np.array([u or "" for u in users], dtype=object), k),
                          "rank": np.tile(np.arange(1, k + 1), len(users)), "item_id": ids.ravel(),
                          "score": scores.ravel()})
    frame[frame["item_id"] != ""].to_csv(out, index=False)
    click.echo(f"{len(users):,} feeds of up to {k} items written to {out} in {time.perf_counter() - started:.1f} s")


@click.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True)
def items(bundle: Path, limit: int, as_json: bool) -> None:
    """List item ids of a bundle (the first LIMIT), one per line."""
    from recsys.bundle import read_bundle

    ids = read_bundle(bundle).item_ids.ids[:limit].tolist()
    click.echo(json.dumps(ids) if as_json else "\n".join(ids))
