"""The catalog as a result shows it: an item's attributes and image, a page of the catalog, the
display rows of a result, and why a filter keeps nothing; for the bundle's items and those put or
deleted since."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from recsys.bundle import Bundle
from recsys.curation.tagger import bundle_taggers, tag_items
from recsys.errors import NotFound
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import FilterColumns, ItemFilter
from recsys.serve.rows import Recommendations, image_path, plain_row, result_rows, row_templates, shown_labels

__all__ = ["Catalog"]


class Catalog:
    """The display side of one bundle, shared by every copy of its recommender.

    Args:
        bundle: the loaded bundle.
        columns: its filter columns.
    """

    def __init__(self, bundle: Bundle, columns: FilterColumns):
        self.bundle = bundle
        self.columns = columns

    @cached_property
    def row_templates(self) -> dict[str, dict]:
        """A result row per bundle item (:func:`~recsys.serve.rows.row_templates`), with the saved
        taggers' tags, built once."""
        bundle = self.bundle
        return row_templates(bundle, tag_items(bundle_taggers(bundle), bundle.vectors) if bundle.taggers else None)

    def rows(self, scored, changes: ItemChanges, *, cold: bool = False, score: bool = True) -> list[dict]:
        """Plain result rows (:func:`~recsys.serve.rows.result_rows`)."""
        return result_rows(self.row_templates, changes, scored, cold=cold, score=score)

    def knows(self, item_id: str, changes: ItemChanges) -> bool:
        """Whether ``item_id`` can be served (in the bundle or put since, and not deleted; a merged
        listing is served as the one it redirects to)."""
        item_id = changes.redirect(item_id)
        return item_id in changes.ids or (item_id in self.bundle.item_ids and item_id not in changes.deleted_ids)

    def item(self, item_id: str, changes: ItemChanges) -> dict:
        """An item's attributes (a put item's latest ones, and values set since the bundle) with
        ``fresh``: whether it was put since the bundle (and then ``held``: whether a check holds
        it out of reads). A merged listing answers with the listing it redirects to, and
        ``redirected_from``: its own id.

        Raises:
            NotFound: unknown or deleted item.
        """
        if item_id in changes.merged:
            return {**self.item(changes.merged[item_id], changes), "redirected_from": item_id}
        attributes = changes.attributes.get(item_id, {})
        if item_id in changes.ids:
            row = changes.ids.row(item_id)
            item = plain_row(changes.items.iloc[row])
            labels = shown_labels(changes.labels[item_id] if changes.labels else None, attributes)
            return {**item, **attributes, "image": image_path(item_id, item_id in changes.thumbnails), "fresh": True,
                    "held": bool(changes.held is not None and changes.held[row]),
                    **({"labels": labels} if labels is not None else {})}
        if item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        row = self.bundle.item_ids.row(item_id)
        item = plain_row(self.bundle.items.iloc[row])
        thumbnails = self.bundle.thumbnails
        labels = shown_labels(self.row_templates[item_id].get("labels") if self.bundle.taggers else None, attributes)
        return {**item, **attributes, "image": image_path(item_id, thumbnails is not None and thumbnails.has(row)),
                "fresh": False, **({"labels": labels} if labels is not None else {})}

    def image(self, item_id: str, changes: ItemChanges) -> bytes | None:
        """An item's JPEG thumbnail (a put item's latest), or ``None`` when it has none.

        Raises:
            NotFound: unknown or deleted item.
        """
        item_id = changes.redirect(item_id)
        if item_id in changes.ids:
            return changes.thumbnails.get(item_id)
        if item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        row = self.bundle.item_ids.row(item_id)
        return self.bundle.thumbnails.get(row) if self.bundle.thumbnails is not None else None

    def listing(self, filters: ItemFilter | None, offset: int, limit: int,
                changes: ItemChanges) -> tuple[int, list[str], str | None]:
        """One page of the servable items that pass ``filters``: the bundle's in catalog order
        (deleted and replaced ones left out), then the put items.

        Returns:
            ``(how many pass in all, the ids from offset to offset + limit, why none passes when the
            filters explain it)``.
        """
        rows = np.flatnonzero(self.columns.allowed(filters, known_elsewhere=changes.ids) & ~changes.hidden)
        fresh = changes.ids.ids[changes.matching(filters, self.bundle.item_ids)]
        page = [str(i) for i in self.bundle.item_ids.ids[rows[offset:offset + limit]]]
        start = max(0, offset - len(rows))
        page += [str(i) for i in fresh[start:start + limit - len(page)]]
        total = len(rows) + len(fresh)
        return total, page, (self.filter_message(filters, changes) if not page else None)

    def filter_message(self, filters: ItemFilter | None, changes: ItemChanges) -> str | None:
        """Why ``filters`` can keep nothing, for a caller with an empty result: a category no
        item (in the bundle or put since) is in, likely misspelt, with the categories there are
        under the longest part of it that exists; ``None`` otherwise."""
        category = filters.category if filters is not None else None
        columns = (self.columns, changes.columns)
        if not category or any(c.has_category(category) for c in columns):
            return None
        parts = category.split("/")
        known = next(("/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                      if any(c.has_category("/".join(parts[:i])) for c in columns)), "")
        names = sorted(set().union(*(c.next_segments(known) for c in columns)))
        if not names:
            return f"no item is in category {category!r}: the items have no categories"
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        return (f"no item is in category {category!r}; "
                f"{f'under {known!r} there are' if known else 'the top-level categories are'} {shown}")

    def explained(self, found: Recommendations, filters: ItemFilter | None,
                  changes: ItemChanges) -> Recommendations:
        """``found``, with a message saying why when it is empty and its filters explain it."""
        if not found and filters is not None and filters.category:
            message = self.filter_message(filters, changes)
            if message is not None:
                found.message = message
        return found
