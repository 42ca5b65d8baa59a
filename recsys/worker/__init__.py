"""One server process: the bundle it serves (download, verification, hot swap), the thread that
follows Redis, the one result cache that decides memory, Redis or the query engine, and the writes
(interactions, item changes)."""
from recsys.worker.cache import Answer as Answer
from recsys.worker.cache import ResultCache as ResultCache
from recsys.worker.serving import Serving as Serving
from recsys.worker.serving import redis_client as redis_client
