"""Pure rules of the bucketed DIGEST: how two views find the few members they differ on
without listing every member.

Members are cut into `of` buckets by their id; a DIGEST either summarises a view (one
short hash per bucket) or lists the buckets that differ, one `[prefix, version,
timestamp]` per member in them. So an exchange costs a hash per bucket plus the members of
the differing buckets, not a line per member of the hive (docs/PROTOCOL.md §5)."""
from __future__ import annotations

import hashlib


PREFIX = 16            # hex characters of a member's id (after 02/03) naming it in a listing
BUCKET_HASH = 8        # hex characters of a bucket's hash in a summary
MAX_BUCKETS = 1024
PER_BUCKET = 4         # about how many members a bucket holds: few to list when it differs


def prefix(peer_id: str) -> str:
    return peer_id[2:2 + PREFIX]


def bucket_of(pfx: str, of: int) -> int:
    return int(pfx[:8], 16) * of >> 32


def buckets_for(count: int) -> int:
    """How many buckets for a view of `count` members: a power of two near count / 4, so
    a summary costs about 2 bytes per member and a differing bucket about 4 lines."""
    of = 1
    while of * PER_BUCKET < count and of < MAX_BUCKETS:
        of *= 2
    return of


def _rows_by_prefix(rows) -> list[tuple[str, int, int, str]]:
    """`(prefix, version, timestamp, peer_id)` of each digest row, sorted as listed."""
    return sorted((prefix(pid), v, ts, pid) for pid, ts, v in rows)


def listing(rows, of: int, buckets=None) -> list[list]:
    """`[[prefix, version, timestamp], ...]` of the rows (`(peer_id, timestamp, version)`,
    as storage.hivemap.digest_rows reads them) in `buckets` (all if None), by prefix."""
    wanted = None if buckets is None else set(buckets)
    return [[p, v, ts] for p, v, ts, _ in _rows_by_prefix(rows)
            if wanted is None or bucket_of(p, of) in wanted]


def bucket_hashes(rows, of: int, salt: str) -> str:
    """One BUCKET_HASH-character hash per bucket, concatenated: sha256 of the salt and the
    canonical JSON of the bucket's listing. The salt (from the sender's fleet hash)
    changes with the view, so two buckets that happen to collide do not stay hidden.
    (Every member computes this for each differing STATE_HASH: each bucket's few rows are
    sorted apart, not the whole view.)"""
    groups: list[list] = [[] for _ in range(of)]
    for pid, ts, v in rows:
        p = prefix(pid)
        groups[bucket_of(p, of)].append((p, v, ts))
    sha = hashlib.sha256
    out = []
    for g in groups:
        g.sort()
        # canonical JSON of the listing, written out directly (hex prefix, JSON numbers)
        text = salt + "[" + ",".join(['["%s",%s,%s]' % r for r in g]) + "]"
        out.append(sha(text.encode()).hexdigest()[:BUCKET_HASH])
    return "".join(out)


def differing_buckets(ours: str, theirs: str) -> list[int]:
    n = BUCKET_HASH
    return [i for i in range(len(theirs) // n) if ours[i * n:(i + 1) * n] != theirs[i * n:(i + 1) * n]]


def compare(our_rows, their_rows: list[list], of: int, buckets, members: set[str],
            settled_before: float) -> tuple[list[str], list[int]]:
    """Within `buckets` (which `their_rows` list whole): the members whose state we hold
    and they lack or hold older, and the buckets in which they hold a member's state
    newer than ours. Only members count, and only states made by `settled_before`: a
    younger state is most likely still on its way as GOSSIP, not missing."""
    wanted = set(buckets)
    by_prefix = {prefix(m): m for m in members}
    theirs = {r[0]: (r[1], r[2]) for r in their_rows}
    mine = {}
    for pid, ts, v in our_rows:
        p = prefix(pid)
        if bucket_of(p, of) in wanted:
            mine[p] = (v, ts, pid)
    they_lack = sorted(m[2] for p, m in mine.items() if m[2] in members
                       and m[1] <= settled_before and theirs.get(p, (0, 0)) < m[:2])
    we_lack = sorted({bucket_of(p, of) for p, t in theirs.items()
                      if p in by_prefix and t[1] <= settled_before
                      and mine.get(p, (0, 0, None))[:2] < t})
    return they_lack, we_lack
