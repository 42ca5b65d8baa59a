"""The only place Redis key strings are built. Every key starts with the namespace prefix.

Layout (``P`` is the prefix, ``recsys`` by default)::

    P:bundle:active                 string  the active bundle version
    P:bundle:versions               zset    published versions, scored by publish time
    P:bundle:<version>:manifest     string  manifest.json as published
    P:bundle:<version>:file:<path>  list    the file's chunks, in order (bundles kept in Redis)
    P:bundle:<version>:folder       string  set for a version whose files are in the file store
                                            (``redis.bundle_files``): the folder it was published to,
                                            for people; workers read their own setting's folder
    P:bundle:events                 channel messages to the workers, one type per kind
                                            (recsys.store.messages: a version activated, items
                                            changed, an interaction post); they also poll
    P:items:gen                     string  counter bumped by every item write (result cache epoch)
    P:items:fresh                   hash    item_id -> JSON of an item put since the bundle
    P:items:deleted                 set     item ids hidden from every result
    P:items:dismissed               hash    item_id -> JSON list of the checks a reviewer dismissed for
                                            it (they flag it no more, put again or not)
    P:audit                         stream  the curation actions (put, release, dismiss, delete,
                                            attributes): who, when, what, before and after (JSON)
    P:items:attributes              hash    JSON [item_id, attribute] -> JSON value set since the
                                            bundle (``in_stock``); kept across bundles until unset
    P:rules                         hash    rule id -> the merchandising rule's JSON (recsys.control)
    P:rules:version                 string  counter bumped by every rule write (also names new rules)
    P:experiments                   hash    experiment id -> the experiment's JSON (recsys.control)
    P:experiments:next              string  counter that names new experiments
    P:experiment:<id>:impressions   stream  the answers of the experiment's reads, a batch per entry
                                            (JSON [request id, user, variant, time, items]); its
                                            report reads them
    P:log                           stream  the interaction log the next training reads
    P:recent:<user_id>              list    the user's recent item ids, newest first, distinct
    P:shown:<user_id>               hash    item id -> times the user's rotated feeds showed it (a
                                            clicked item is in the recent list and not rotated)
    P:users:active                  zset    user ids with recent items, scored by their last post
                                            (epoch seconds); anyone else has none
    P:posted:<sha256 of the key>    string  an interaction post's Idempotency-Key, taken in the
                                            post's own transaction: the stream ids it logged (JSON)
    P:activity:<user_id>            string  counter bumped by each of the user's interaction posts;
                                            a cached feed carries the count it was computed at
    P:result:<kind>:<owner>         hash    cached answers of one item or user (recsys.store.results);
                                            field = bundle version | item generation | query; a
                                            user's value is the activity count, a newline, the answer
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True)
class Keys:
    """Key names under one namespace.

    Example:
        >>> Keys("recsys").result("user", "u42")
        'recsys:result:user:u42'
    """

    prefix: str = "recsys"

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def active(self) -> str:
        return self._key("bundle", "active")

    @property
    def versions(self) -> str:
        return self._key("bundle", "versions")

    @property
    def events(self) -> str:
        return self._key("bundle", "events")

    def manifest(self, version: str) -> str:
        return self._key("bundle", version, "manifest")

    def file(self, version: str, path: str) -> str:
        return self._key("bundle", version, "file", path)

    def folder(self, version: str) -> str:
        return self._key("bundle", version, "folder")

    def bundle_pattern(self, version: str) -> str:
        return self._key("bundle", version, "*")

    @property
    def items_gen(self) -> str:
        return self._key("items", "gen")

    @property
    def fresh(self) -> str:
        return self._key("items", "fresh")

    @property
    def deleted(self) -> str:
        return self._key("items", "deleted")

    @property
    def attributes(self) -> str:
        return self._key("items", "attributes")

    @property
    def rules(self) -> str:
        return self._key("rules")

    @property
    def rules_version(self) -> str:
        return self._key("rules", "version")

    @property
    def dismissed(self) -> str:
        return self._key("items", "dismissed")

    @property
    def merged(self) -> str:
        return self._key("items", "merged")

    @property
    def audit(self) -> str:
        return self._key("audit")

    @property
    def experiments(self) -> str:
        return self._key("experiments")

    @property
    def experiments_next(self) -> str:
        return self._key("experiments", "next")

    def impressions(self, experiment_id: str) -> str:
        return self._key("experiment", experiment_id, "impressions")

    @property
    def log(self) -> str:
        return self._key("log")

    def posted(self, idempotency_key: str) -> str:
        return self._key("posted", hashlib.sha256(idempotency_key.encode()).hexdigest())

    def activity(self, user_id: str) -> str:
        return self._key("activity", user_id)

    def recent(self, user_id: str) -> str:
        return self._key("recent", user_id)

    def shown(self, user_id: str) -> str:
        return self._key("shown", user_id)

    @property
    def recent_pattern(self) -> str:
        return self._key("recent", "*")

    @property
    def active_users(self) -> str:
        return self._key("users", "active")

    def result(self, kind: str, owner: str) -> str:
        """Cached results of one owner; the hash field carries the bundle version and the query,
        so a new version never serves an old result, and deleting the key forgets them all."""
        return self._key("result", kind, owner)

    @property
    def all_pattern(self) -> str:
        return self._key("*")
