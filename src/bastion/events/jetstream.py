"""Bluesky Jetstream v1 JSON -> canonical events (../shared/spec/events-v1.md, "Mapping from real platforms").

The mapper is stateful because deletes carry no record: it keeps ``(did, collection, rkey) -> subject`` for
follows, blocks, likes and reposts, and the set of DIDs already seen (the first sight of a DID becomes an
``account.create``). Everything it cannot map is counted by reason in :attr:`JetstreamMapper.ignored`, never
raised.

>>> m = JetstreamMapper()
>>> line = {"did": "did:plc:a", "time_us": 1_700_000_000_000_000, "kind": "commit", "commit": {
...     "rev": "r1", "operation": "create", "collection": "app.bsky.graph.follow", "rkey": "k1",
...     "record": {"$type": "app.bsky.graph.follow", "subject": "did:plc:b", "createdAt": "2023-11-14T22:13:20Z"}}}
>>> [e["type"] for e in m.map(line)]
['account.create', 'graph.follow']
>>> delete = {"did": "did:plc:a", "time_us": 1_700_000_000_100_000, "kind": "commit", "commit": {
...     "rev": "r2", "operation": "delete", "collection": "app.bsky.graph.follow", "rkey": "k1"}}
>>> [(e["type"], e["target"]) for e in m.map(delete)]
[('graph.unfollow', 'did:plc:b')]
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"
BLOCK = "app.bsky.graph.block"
PROFILE = "app.bsky.actor.profile"

SUSPENDED_STATUSES = {"takendown", "suspended"}
USER_STATUSES = {"deactivated": "deactivated", "deleted": "deleted"}


def did_of(uri: str | None) -> str | None:
    """The repository DID of an ``at://`` URI."""
    if not uri or not uri.startswith("at://"):
        return None
    return uri[5:].split("/", 1)[0] or None


def _list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else empty (hostile records put anything anywhere)."""
    return value if isinstance(value, list) else []


def _blob_cid(blob: Any) -> str | None:
    if isinstance(blob, dict):
        ref = blob.get("ref")
        if isinstance(ref, dict) and isinstance(ref.get("$link"), str):
            return str(ref["$link"])
        if isinstance(blob.get("cid"), str):
            return str(blob["cid"])
    return None


def post_fields(record: dict[str, Any]) -> dict[str, Any]:
    """Canonical ``post`` fields (besides ``id``) of an ``app.bsky.feed.post`` record."""
    out: dict[str, Any] = {}
    text = record.get("text")
    if isinstance(text, str):
        out["text"] = text
    reply = record.get("reply")
    if isinstance(reply, dict):
        parent = (reply.get("parent") or {}).get("uri") if isinstance(reply.get("parent"), dict) else None
        root = (reply.get("root") or {}).get("uri") if isinstance(reply.get("root"), dict) else None
        if isinstance(parent, str):
            out["reply_to"] = parent
            if author := did_of(parent):
                out["reply_to_author"] = author
        if isinstance(root, str):
            out["root"] = root
    mentions: list[str] = []
    urls: list[str] = []
    tags: list[str] = []
    for facet in _list(record.get("facets")):
        if not isinstance(facet, dict):
            continue
        for feat in _list(facet.get("features")):
            if not isinstance(feat, dict):
                continue
            kind = str(feat.get("$type", ""))
            if kind.endswith("#mention") and isinstance(feat.get("did"), str):
                mentions.append(feat["did"])
            elif kind.endswith("#link") and isinstance(feat.get("uri"), str):
                urls.append(feat["uri"])
            elif kind.endswith("#tag") and isinstance(feat.get("tag"), str):
                tags.append(feat["tag"])
    for tag in _list(record.get("tags")):
        if isinstance(tag, str):
            tags.append(tag)
    media: list[str] = []
    embed = record.get("embed")
    if isinstance(embed, dict):
        _embed_fields(embed, out, urls, media)
    if mentions:
        out["mentions"] = list(dict.fromkeys(mentions))
    if urls:
        out["urls"] = list(dict.fromkeys(urls))
    if tags:
        out["hashtags"] = list(dict.fromkeys(tags))
    if media:
        out["media"] = media
    langs = record.get("langs")
    if isinstance(langs, list) and langs and isinstance(langs[0], str):
        out["lang"] = langs[0]
    return out


def _embed_fields(embed: dict[str, Any], out: dict[str, Any], urls: list[str], media: list[str]) -> None:
    etype = str(embed.get("$type", ""))
    if etype.endswith("embed.external"):
        ext = embed.get("external")
        if isinstance(ext, dict) and isinstance(ext.get("uri"), str):
            urls.append(ext["uri"])
    elif etype.endswith("embed.images"):
        for img in _list(embed.get("images")):
            if isinstance(img, dict) and (cid := _blob_cid(img.get("image"))):
                media.append(cid)
    elif etype.endswith("embed.video"):
        if cid := _blob_cid(embed.get("video")):
            media.append(cid)
    elif etype.endswith("embed.record"):
        rec = embed.get("record")
        if isinstance(rec, dict) and isinstance(rec.get("uri"), str):
            out["quote_of"] = rec["uri"]
            if author := did_of(rec["uri"]):
                out["quote_of_author"] = author
    elif etype.endswith("embed.recordWithMedia"):
        rec = embed.get("record")
        if isinstance(rec, dict):
            _embed_fields({"$type": "app.bsky.embed.record", "record": rec.get("record")}, out, urls, media)
        med = embed.get("media")
        if isinstance(med, dict):
            _embed_fields(med, out, urls, media)


class JetstreamMapper:
    def __init__(self, max_refs: int = 2_000_000, platform: str = "bluesky") -> None:
        self.refs: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self.max_refs = max_refs
        self.seen_dids: set[str] = set()
        self.ignored: Counter[str] = Counter()
        self.mapped: Counter[str] = Counter()
        self.platform = platform

    def _remember(self, key: tuple[str, str, str], subject: str) -> None:
        self.refs[key] = subject
        if len(self.refs) > self.max_refs:
            self.refs.popitem(last=False)

    def map(self, msg: Any) -> list[dict[str, Any]]:
        """Canonical event dicts for one Jetstream message (possibly none; reasons land in ``ignored``).
        Never raises: a message of an unexpected shape is counted as ``malformed message``."""
        try:
            return self._map(msg)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
            self.ignored["malformed message"] += 1
            return []

    def _map(self, msg: Any) -> list[dict[str, Any]]:
        if not isinstance(msg, dict):
            self.ignored["not an object"] += 1
            return []
        did, time_us, kind = msg.get("did"), msg.get("time_us"), msg.get("kind")
        if not isinstance(did, str) or not isinstance(time_us, int):
            self.ignored["missing did or time_us"] += 1
            return []
        ts = time_us // 1000
        out: list[dict[str, Any]] = []
        if did not in self.seen_dids:
            self.seen_dids.add(did)
            out.append(self._event(f"{did}/first-seen", "account.create", ts, did, msg, raw=False,
                                   profile={}))
        if kind == "commit":
            out.extend(self._commit(did, ts, msg))
        elif kind == "account":
            out.extend(self._account(did, ts, msg))
        elif kind == "identity":
            ident = msg.get("identity") or {}
            handle = ident.get("handle") if isinstance(ident, dict) else None
            if isinstance(handle, str):
                out.append(self._event(f"{did}/identity/{ident.get('seq')}", "account.update", ts, did, msg,
                                       profile={"handle": handle}))
            else:
                self.ignored["identity without handle"] += 1
        else:
            self.ignored[f"kind {kind!r}"] += 1
        for ev in out:
            self.mapped[ev["type"]] += 1
        return out

    def _event(self, eid: str, etype: str, ts: int, did: str, msg: Any, raw: bool = True,
               **fields: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"id": eid[:128], "type": etype, "ts": ts, "actor": did, "platform": self.platform}
        ev.update(fields)
        if raw:
            ev["raw"] = msg
        return ev

    def _account(self, did: str, ts: int, msg: dict[str, Any]) -> list[dict[str, Any]]:
        acc = msg.get("account") or {}
        if not isinstance(acc, dict):
            self.ignored["bad account payload"] += 1
            return []
        eid = f"{did}/account/{acc.get('seq')}"
        if acc.get("active") is False:
            status = str(acc.get("status", ""))
            if status in SUSPENDED_STATUSES:
                return [self._event(eid, "account.status", ts, did, msg, status="suspended", by="platform",
                                    reason=status)]
            if status in USER_STATUSES:
                return [self._event(eid, "account.status", ts, did, msg, status=USER_STATUSES[status], by="user",
                                    reason=status)]
            self.ignored[f"account status {status!r}"] += 1
            return []
        self.ignored["account active"] += 1
        return []

    def _commit(self, did: str, ts: int, msg: dict[str, Any]) -> list[dict[str, Any]]:
        c = msg.get("commit")
        if not isinstance(c, dict):
            self.ignored["commit without body"] += 1
            return []
        op, coll, rkey, rev = c.get("operation"), c.get("collection"), c.get("rkey"), c.get("rev")
        if not isinstance(coll, str) or not isinstance(rkey, str):
            self.ignored["commit without collection/rkey"] += 1
            return []
        eid = f"{did}/{coll}/{rkey}/{rev}"
        uri = f"at://{did}/{coll}/{rkey}"
        rec = c.get("record")
        record: dict[str, Any] = rec if isinstance(rec, dict) else {}
        key = (did, coll, rkey)
        if op == "create" or (op == "update" and coll == PROFILE):
            if coll == POST:
                if op != "create":
                    self.ignored["post update"] += 1
                    return []
                return [self._event(eid, "post.create", ts, did, msg, post={"id": uri, **post_fields(record)})]
            if coll in (LIKE, REPOST):
                subj = record.get("subject")
                suri = subj.get("uri") if isinstance(subj, dict) else None
                if not isinstance(suri, str):
                    self.ignored[f"{coll} without subject"] += 1
                    return []
                self._remember(key, suri)
                post: dict[str, Any] = {"id": suri}
                if author := did_of(suri):
                    post["author"] = author
                return [self._event(eid, "post.engage", ts, did, msg, kind="like" if coll == LIKE else "repost",
                                    post=post)]
            if coll in (FOLLOW, BLOCK):
                target = record.get("subject")
                if not isinstance(target, str) or not target:
                    self.ignored[f"{coll} without subject"] += 1
                    return []
                self._remember(key, target)
                return [self._event(eid, "graph.follow" if coll == FOLLOW else "graph.block", ts, did, msg,
                                    target=target)]
            if coll == PROFILE:
                profile: dict[str, Any] = {}
                if isinstance(record.get("displayName"), str):
                    profile["display_name"] = record["displayName"]
                if isinstance(record.get("description"), str):
                    profile["bio"] = record["description"]
                if avatar := _blob_cid(record.get("avatar")):
                    profile["avatar"] = avatar
                if isinstance(record.get("website"), str):
                    profile["url"] = record["website"]
                return [self._event(eid, "account.update", ts, did, msg, profile=profile)]
            self.ignored[f"collection {coll}"] += 1
            return []
        if op == "delete":
            if coll == POST:
                return [self._event(eid, "post.delete", ts, did, msg, post={"id": uri})]
            subject = self.refs.pop(key, None)
            if coll in (LIKE, REPOST, FOLLOW, BLOCK) and subject is None:
                self.ignored[f"delete of unknown {coll} record"] += 1
                return []
            if coll in (LIKE, REPOST):
                assert subject is not None
                post = {"id": subject}
                if author := did_of(subject):
                    post["author"] = author
                return [self._event(eid, "post.engage", ts, did, msg,
                                    kind="unlike" if coll == LIKE else "unrepost", post=post)]
            if coll in (FOLLOW, BLOCK):
                return [self._event(eid, "graph.unfollow" if coll == FOLLOW else "graph.unblock", ts, did, msg,
                                    target=subject)]
            self.ignored[f"delete in collection {coll}"] += 1
            return []
        self.ignored[f"{op} in collection {coll}"] += 1
        return []
