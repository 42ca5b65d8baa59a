"""Step 6 of the flow: Redis holds published bundles, item changes, cached results and interactions."""
from recsys.store.activity import ActivityStore as ActivityStore
from recsys.store.activity import Event as Event
from recsys.store.connection import connect as connect
from recsys.store.embedded import EmbeddedRedis as EmbeddedRedis
from recsys.store.keys import Keys as Keys
from recsys.store.redis import RedisStore as RedisStore
