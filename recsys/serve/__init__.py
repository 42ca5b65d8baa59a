"""The query engine: a :class:`Recommender` façade over similar items, feeds, search and the
catalog of one loaded bundle; its reads are typed queries (:mod:`recsys.serve.queries`)."""
from recsys.serve.filters import ItemFilter as ItemFilter
from recsys.serve.queries import FEED_K as FEED_K
from recsys.serve.queries import SEARCH_K as SEARCH_K
from recsys.serve.queries import SIMILAR_K as SIMILAR_K
from recsys.serve.queries import FeedQuery as FeedQuery
from recsys.serve.queries import Plan as Plan
from recsys.serve.queries import SimilarQuery as SimilarQuery
from recsys.serve.recommender import Recommender as Recommender
from recsys.serve.rows import MAX_K as MAX_K
from recsys.serve.rows import Recommendations as Recommendations
from recsys.serve.rows import Scored as Scored
from recsys.serve.rows import check_k as check_k
