"""One server process: the bundle it serves (download, verification, hot swap), the thread that
follows Redis, and the one result cache that decides lookup, cached answer or computation."""
from recsys.worker.cache import ResultCache as ResultCache
from recsys.worker.serving import Serving as Serving
from recsys.worker.serving import redis_client as redis_client
