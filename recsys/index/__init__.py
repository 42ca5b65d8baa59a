"""Step 4 of the flow: approximate nearest-neighbour indexes over item vectors."""
from recsys.index.annoy import AnnIndex as AnnIndex
from recsys.index.annoy import measure_recall as measure_recall
from recsys.index.annoy import tune_search_effort as tune_search_effort
