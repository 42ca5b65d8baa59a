"""Catalog -> bundle: the towers embed the items, the indexes and precomputed lists are built, and
the user tower is trained on top (:func:`build_item_bundle`, :func:`train_user_tower`)."""
from recsys.pipeline.build import BuildReport as BuildReport
from recsys.pipeline.build import build_item_bundle as build_item_bundle
from recsys.pipeline.build import create_towers as create_towers
from recsys.pipeline.train import TrainReport as TrainReport
from recsys.pipeline.train import train_user_tower as train_user_tower
