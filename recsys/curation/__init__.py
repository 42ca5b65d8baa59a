"""Catalog curation from the item vectors: duplicate listings, outliers and mislabels, clusters,
labels from a few examples or prompts, and diverse, balanced subsets."""
from recsys.curation.clusters import Clusters as Clusters
from recsys.curation.clusters import find_clusters as find_clusters
from recsys.curation.duplicates import Duplicates as Duplicates
from recsys.curation.duplicates import find_duplicates as find_duplicates
from recsys.curation.labels import Labels as Labels
from recsys.curation.labels import label_from_examples as label_from_examples
from recsys.curation.labels import label_from_prompts as label_from_prompts
from recsys.curation.outliers import Outliers as Outliers
from recsys.curation.outliers import find_outliers as find_outliers
from recsys.curation.subset import Subset as Subset
from recsys.curation.subset import diverse_subset as diverse_subset
