"""Catalog curation from the item vectors: duplicate listings and diverse, balanced subsets."""
from recsys.curation.duplicates import Duplicates as Duplicates
from recsys.curation.duplicates import find_duplicates as find_duplicates
from recsys.curation.subset import Subset as Subset
from recsys.curation.subset import diverse_subset as diverse_subset
