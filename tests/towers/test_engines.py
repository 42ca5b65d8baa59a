"""Where the towers run: the Ray engine writes the bundle the local engine writes."""
from __future__ import annotations

import time

import numpy as np
import pytest
from click.testing import CliRunner

from recsys.bundle import read_bundle
from recsys.cli import cli
from recsys.errors import ConfigError
from recsys.pipeline.build import build_item_bundle, ray_engine
from recsys.towers import create_tower
from recsys.towers.engines import RayEngine
from tests.conftest import make_settings


@pytest.mark.slow  # a local Ray instance and one actor per tower, each loading its model: about a minute
def test_a_build_on_ray_writes_the_bundle_a_local_build_writes(shop, tmp_path, _image_tower, _text_tower):
    catalog = shop.iloc[:48].reset_index(drop=True)
    local = build_item_bundle(catalog, make_settings(tmp_path / "local"), tmp_path / "local" / "models" / "shop",
                              show_progress=False, towers={"image": _image_tower, "text": _text_tower,
                                                           "tabular": create_tower("tabular")})
    # its own embedding cache, so that every image and text goes through the actors, in parts of 16
    settings = make_settings(tmp_path / "ray", towers={"cache_dir": str(tmp_path / "ray" / "embeddings"),
                                                       "save_every": 16, "joint": {"enabled": False}})
    with ray_engine(settings, workers=2) as engine:
        remote = build_item_bundle(catalog, settings, tmp_path / "ray" / "models" / "shop", show_progress=False,
                                   engine=engine)
        again = build_item_bundle(catalog, settings, tmp_path / "ray" / "models" / "shop", show_progress=False,
                                  engine=engine)
    assert again.cache["image"] == {"cached": local.modalities["image"], "encoded": 0,
                                    "missing": len(catalog) - local.modalities["image"]}
    assert remote.cache["image"]["encoded"] == local.modalities["image"] > 0
    assert remote.cache["text"]["encoded"] == local.modalities["text"] > 0
    ours, theirs = read_bundle(local.path), read_bundle(remote.path)
    np.testing.assert_array_equal(ours.vectors.mask, theirs.vectors.mask)
    np.testing.assert_allclose(ours.vectors.combined, theirs.vectors.combined, atol=1e-5)
    for name in ("image", "text"):
        np.testing.assert_allclose(ours.vectors.blocks[name].vectors, theirs.vectors.blocks[name].vectors, atol=1e-5)
    np.testing.assert_array_equal(ours.similar["combined"].rows[:, :5], theirs.similar["combined"].rows[:, :5])


@pytest.mark.slow  # two Ray nodes and two actors, each loading the text model: under a minute
def test_a_build_through_the_address_of_a_two_node_ray_cluster(shop, tmp_path, _text_tower):
    """Two Ray nodes on this machine, each with one CPU, and two text actors of one CPU each: a
    build given the head's address runs an actor on each node and writes the vectors a local
    build writes."""
    import socket

    import ray
    from ray.cluster_utils import Cluster

    catalog = shop.iloc[:32].drop(columns=["image"]).reset_index(drop=True)
    local = build_item_bundle(catalog, make_settings(tmp_path / "local"), tmp_path / "local" / "models" / "shop",
                              show_progress=False, towers={"text": _text_tower, "tabular": create_tower("tabular")})
    with socket.socket() as free:  # Ray's default port is the machine's Redis's
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "gcs_server_port": port,
                                                            "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        settings = make_settings(tmp_path / "ray", towers={"cache_dir": str(tmp_path / "ray" / "embeddings"),
                                                           "save_every": 8, "joint": {"enabled": False}})
        with ray_engine(settings, address=cluster.address, workers=2) as engine:
            remote = build_item_bundle(catalog, settings, tmp_path / "ray" / "models" / "shop",
                                       show_progress=False, engine=engine)
            actors = [a for a in ray._private.state.actors().values() if "_TowerActor" in a["ActorClassName"]]
        assert len(actors) == 2 and len({a["Address"]["NodeID"] for a in actors}) == 2  # one on each node
    finally:
        cluster.shutdown()
    assert remote.cache["text"]["encoded"] == local.modalities["text"] > 0
    ours, theirs = read_bundle(local.path), read_bundle(remote.path)
    np.testing.assert_allclose(ours.vectors.blocks["text"].vectors, theirs.vectors.blocks["text"].vectors, atol=1e-5)
    np.testing.assert_allclose(ours.vectors.combined, theirs.vectors.combined, atol=1e-5)


@pytest.mark.slow  # a local Ray instance: about ten seconds
def test_a_ray_build_that_makes_no_progress_stops_with_an_error_at_its_deadline(shop, tmp_path):
    """A part not embedded within towers.part_timeout stops the build with an error that says what
    may be wrong, instead of waiting forever (here: an actor cannot start and embed in a second)."""
    from recsys.errors import EngineError

    catalog = shop.iloc[:8].drop(columns=["image"]).reset_index(drop=True)
    settings = make_settings(tmp_path, towers={"cache_dir": str(tmp_path / "embeddings"), "part_timeout": 1.0,
                                               "joint": {"enabled": False}})
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"no text part in 1 s \(towers.part_timeout\).*resumes it"), \
            ray_engine(settings) as engine:
        build_item_bundle(catalog, settings, tmp_path / "models" / "shop", show_progress=False, engine=engine)
    assert time.monotonic() - started < 60


def test_the_ray_engine_refuses_no_workers():
    with pytest.raises(ConfigError, match="at least one worker"):
        RayEngine({}, workers=0)


def test_build_options_for_ray_need_the_ray_engine(tmp_path):
    result = CliRunner().invoke(cli, ["build", "--catalog", "synthetic:10", "--out", str(tmp_path / "m"),
                                      "--workers", "2"])
    assert result.exit_code == 2
    assert "--address and --workers go with --engine ray" in result.output
