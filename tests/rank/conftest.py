"""The ranking tests' shop: 300 items with a category and a price (the tabular tower alone: built
in seconds)."""
from __future__ import annotations

import pytest

from tests.rank.shop import small_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return small_store(tmp_path_factory.mktemp("store"))
