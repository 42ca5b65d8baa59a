"""The query engine: a :class:`Recommender` façade over similar items, feeds, candidates, item
changes, filters and result rows, for one loaded bundle."""
from recsys.serve.filters import ItemFilter as ItemFilter
from recsys.serve.recommender import Recommender as Recommender
from recsys.serve.rows import MAX_K as MAX_K
from recsys.serve.rows import Recommendations as Recommendations
from recsys.serve.rows import Scored as Scored
from recsys.serve.rows import check_k as check_k
