"""Column names and closed vocabularies of the catalog and interaction frames, named once, and the
checks of ids and event times that the API and the trainer share."""
from __future__ import annotations

import math

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

# the longest catalog field read (characters): a data: image URL may be long, text may not
MAX_FIELD_CHARS = 100_000
MAX_IMAGE_CHARS = 1_000_000

# ids at every boundary are strings of bounded length and printable characters
MAX_ID_LENGTH = 200
# event times the trainer accepts, epoch seconds: 1970 to 2100 (a later number is most likely
# milliseconds, and is refused as such)
MAX_TIMESTAMP = 4_102_444_800.0


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid id (the API and the trainer ask the same), or ``None``.

    Printable means no control, format or separator characters other than the plain space: no
    NBSP, zero-width or right-to-left marks, which look alike and would split one user in two.
    """
    if not value.strip():
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if not value.isprintable():
        return "has non-printable characters (control, zero-width, no-break space or direction marks)"
    return None


def timestamp_problem(seconds: float) -> str | None:
    """Why ``seconds`` is not a usable event time in epoch seconds, or ``None``."""
    if not math.isfinite(seconds):
        return "is not a finite number"
    if 1e11 < seconds <= MAX_TIMESTAMP * 1000:
        return f"{seconds:.6g} looks like milliseconds; send epoch seconds"
    if not 0 <= seconds <= MAX_TIMESTAMP:
        return f"{seconds:.6g} is not between 1970 and 2100 in epoch seconds"
    return None
