"""IdMap: string ids at the edges, dense rows inside."""
import numpy as np
import pytest

from recsys.data.ids import IdMap
from recsys.errors import NotFound


def test_id_map_rows_and_find():
    ids = IdMap(["a", "b", "c"])
    assert ids.rows(["c", "a"]).tolist() == [2, 0]
    assert ids.find(["c", "nope", "a"]).tolist() == [2, -1, 0]  # no error: -1 marks the unknown
    assert ids.find([]).dtype == np.int64 and len(ids.find([])) == 0
    with pytest.raises(NotFound, match="unknown item_id 'nope' \\(3 items known\\)"):
        ids.rows(["a", "nope"])
