"""TowerContract: what every tower must do. A tower's test class overrides make_tower()."""
import numpy as np
import pandas as pd

from recsys.towers.base import Tower


class TowerContract:
    def make_tower(self, shop) -> Tower:
        raise NotImplementedError

    def test_shape_dtype_unit_rows(self, shop_sample, tower):
        out = tower.encode(shop_sample, show_progress=False)
        assert isinstance(tower, Tower)
        assert out.vectors.shape == (len(shop_sample), tower.dim)
        assert out.vectors.dtype == np.float32 and out.mask.dtype == bool
        norms = np.linalg.norm(out.vectors, axis=1)
        np.testing.assert_allclose(norms[out.mask], 1.0, atol=1e-5)
        assert (norms[~out.mask] == 0).all()
        assert out.mask.sum() >= 0.8 * len(shop_sample)

    def test_batch_equals_single_and_keeps_order(self, shop_sample, tower):
        whole = tower.encode(shop_sample, show_progress=False)
        reordered = shop_sample.iloc[::-1]
        backwards = tower.encode(reordered, show_progress=False)
        np.testing.assert_allclose(backwards.vectors[::-1], whole.vectors, atol=2e-3)
        single = tower.encode(shop_sample.iloc[[3]], show_progress=False)
        np.testing.assert_allclose(single.vectors[0], whole.vectors[3], atol=2e-3)

    def test_encoder_id_and_keys(self, shop_sample, tower):
        keys = tower.content_keys(shop_sample)
        assert len(keys) == len(shop_sample)
        assert isinstance(tower.encoder_id(), str) and tower.encoder_id() == tower.encoder_id()
        assert tower.describe()["dim"] == tower.dim

    def test_empty_modality_is_masked(self, tower):
        empty = pd.DataFrame({"item_id": ["x"], "title": [""], "description": [""], "image": [""],
                              "colour": [""], "price": [float("nan")], "category": [""]})
        out = tower.encode(empty, show_progress=False)
        assert not out.mask[0] and (out.vectors[0] == 0).all()
