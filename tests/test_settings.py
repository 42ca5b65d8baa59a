"""Settings: defaults need no configuration; YAML below env below keyword arguments."""
import warnings

import pytest

from recsys.errors import ConfigError
from recsys.settings import load_settings


def test_embedded_defaults(monkeypatch):
    for name in ("RECSYS_CONFIG", "RECSYS_INDEX__N_TREES", "RECSYS_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.towers.image.model == "tf_efficientnet_lite0"
    assert settings.towers.text.model is None  # the packaged all-MiniLM-L6-v2
    assert settings.weights == {"image": 0.4, "text": 0.4, "tabular": 0.2}


def test_precedence(tmp_path, monkeypatch):
    config = tmp_path / "recsys.yaml"
    config.write_text("index:\n  n_trees: 7\n  search_k: 100\ntowers:\n  image:\n    model: resnet50\n")
    monkeypatch.setenv("RECSYS_INDEX__N_TREES", "9")
    settings = load_settings(config_file=config)
    assert settings.index.n_trees == 9  # env beats YAML
    assert settings.index.search_k == 100  # YAML beats defaults
    assert settings.towers.image.model == "resnet50"
    assert load_settings(config_file=config, index={"n_trees": 3}).index.n_trees == 3


def test_all_problems_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_INDEX__N_TREES", "0")
    monkeypatch.setenv("RECSYS_TOWERS__IMAGE__BATCH_SIZE", "many")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "RECSYS_INDEX__N_TREES" in str(info.value) and "RECSYS_TOWERS__IMAGE__BATCH_SIZE" in str(info.value)


def test_bad_files_and_weights(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(config_file=tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("index: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(config_file=tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="RECSYS_WEIGHTS.*unknown modality 'colour'"):
        load_settings(weights={"colour": 1.0})
    with pytest.raises(ConfigError, match="RECSYS_UNKNOWN_OPTION"):
        load_settings(unknown_option=1)


def test_collab_settings(monkeypatch):
    monkeypatch.setenv("RECSYS_COLLAB__EVENT_WEIGHTS", '{"purchase": 20}')
    monkeypatch.setenv("RECSYS_COLLAB__MODEL", "bpr")
    settings = load_settings()
    assert settings.collab.model == "bpr"
    # event types left out keep their defaults
    assert settings.collab.event_weights == {"view": 1.0, "click": 2.0, "add_to_cart": 4.0,
                                             "purchase": 20.0, "rating": 1.0}
    monkeypatch.setenv("RECSYS_COLLAB__EVENT_WEIGHTS", '{"like": 1}')
    monkeypatch.setenv("RECSYS_COLLAB__CONTENT_WEIGHT", "1.5")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "RECSYS_COLLAB__EVENT_WEIGHTS: Value error, unknown event type(s) ['like']" in info.value.message
    assert "RECSYS_COLLAB__CONTENT_WEIGHT" in info.value.message


def test_the_settings_doc_table_matches_the_code():
    from pathlib import Path

    from recsys.settings import settings_table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    missing = [row for row in settings_table().splitlines() if row not in doc]
    assert not missing, "docs/settings.md is stale; paste recsys.settings.settings_table():\n" + "\n".join(missing)


def test_the_redis_url_is_read_from_its_short_name(monkeypatch):
    monkeypatch.delenv("RECSYS_REDIS__URL", raising=False)
    monkeypatch.setenv("RECSYS_REDIS_URL", "redis://127.0.0.1:6379/3")
    assert load_settings().redis.url == "redis://127.0.0.1:6379/3"
    assert load_settings(redis={"prefix": "shop"}).redis.url == "redis://127.0.0.1:6379/3"
    monkeypatch.setenv("RECSYS_REDIS__URL", "redis://127.0.0.1:6379/4")  # the full name wins
    assert load_settings().redis.url == "redis://127.0.0.1:6379/4"


def test_unknown_variables_are_named_with_the_nearest_known_one():
    from recsys.errors import RecsysWarning
    from recsys.settings import unknown_env_names, warn_unknown_env

    environ = {"RECSYS_REDIS_URL": "x", "RECSYS_REDIS__URL": "x", "RECSYS_API_KEY": "k",
               "RECSYS_INDEX__N_TRESS": "5", "RECSYS_API__WORKER": "4", "RECSYS_NONSENSE_THING": "1",
               "PATH": "/bin"}
    assert unknown_env_names(environ) == [("RECSYS_API__WORKER", "RECSYS_API__WORKERS"),
                                          ("RECSYS_INDEX__N_TRESS", "RECSYS_INDEX__N_TREES"),
                                          ("RECSYS_NONSENSE_THING", None)]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert len(warn_unknown_env(environ)) == 3
    assert [w.category for w in seen] == [RecsysWarning] * 3
    assert "did you mean RECSYS_INDEX__N_TREES?" in str(seen[1].message)


def test_the_api_key_is_read_from_its_short_name(monkeypatch):
    monkeypatch.delenv("RECSYS_API__API_KEY", raising=False)
    monkeypatch.setenv("RECSYS_API_KEY", "short")
    assert load_settings().api.api_key.get_secret_value() == "short"
    assert load_settings(api={"port": 9000}).api.api_key.get_secret_value() == "short"
    assert load_settings(api={"api_key": "given"}).api.api_key.get_secret_value() == "given"
    monkeypatch.setenv("RECSYS_API__API_KEY", "long")  # the full name wins
    assert load_settings().api.api_key.get_secret_value() == "long"
    monkeypatch.delenv("RECSYS_API_KEY")
    assert load_settings().api.api_key.get_secret_value() == "long"
