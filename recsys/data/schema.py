"""Column names and closed vocabularies of the catalog and interaction frames, named once."""
from __future__ import annotations

# catalog
ITEM_ID = "item_id"
TITLE = "title"
DESCRIPTION = "description"
IMAGE = "image"
COLOUR = "colour"
PRICE = "price"
CATEGORY = "category"
TAGS = "tags"
GENRES = "genres"  # multi-label, "|"-separated (MovieLens)
YEAR = "year"

CATALOG_REQUIRED = (ITEM_ID,)
CATALOG_TEXT_COLUMNS = (TITLE, DESCRIPTION, TAGS, IMAGE, COLOUR, CATEGORY, GENRES)
CATALOG_NUMERIC_COLUMNS = (PRICE, YEAR)

# interactions
USER_ID = "user_id"
EVENT = "event"
VALUE = "value"
TIMESTAMP = "timestamp"

INTERACTIONS_REQUIRED = (USER_ID, ITEM_ID, EVENT)
EVENTS = ("view", "click", "add_to_cart", "purchase", "rating")

# ids at every boundary are strings of bounded length and printable characters
MAX_ID_LENGTH = 200
