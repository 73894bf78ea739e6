"""The CLBoss gateway: every CLBoss call cl-hive makes goes through here, and only to
commands CLBoss has (`clboss-status`, `clboss-unmanage`).

`clboss-unmanage nodeid tags` replaces the node's whole tag set, and cl-revenue-ops puts
its own `lnfee,balance` on the same nodes. So a change is read (`clboss-status`'s
`unmanaged`), merged and written back whole, one change at a time; cl-hive records the
tags it added (SQLite, so a restart remembers them) and a release removes only those.
A tag that was already there when we wanted it is someone else's: not recorded, never
removed by us. Between our read and our write another plugin may write too: CLBoss offers
no compare-and-swap, so that window is only kept short.
"""
from __future__ import annotations

from typing import Callable

import structlog

from handlers.bridge.companions import CLBOSS, CLBOSS_TAGS
from handlers.bridge.pool import TIMED_OUT, CallOutcome
from storage import bridge as store

log = structlog.get_logger("hive.bridge")

OPEN, LNFEE = "open", "lnfee"
Done = Callable[[str | None], None]     # called with None on success, else why not


def parse_tags(text) -> set[str]:
    """`"balance, lnfee"` -> {"balance", "lnfee"}; anything else CLBoss might show is kept
    as it is, so writing the set back never drops another plugin's tag."""
    if not isinstance(text, str):
        return set()
    return {t.strip() for t in text.split(",") if t.strip()}


def ignore(ctx, peer_id: str, on_done: Done | None = None) -> None:
    """CLBoss must not open channels to `peer_id`."""
    add_tag(ctx, peer_id, OPEN, on_done)


def release(ctx, peer_id: str, on_done: Done | None = None) -> None:
    """Hand back what cl-hive took for `peer_id`: only the tags cl-hive added."""
    tags = sorted(store.our_tags(ctx.db.conn(), peer_id))
    errors: list[str] = []
    for tag in tags:
        remove_tag(ctx, peer_id, tag, lambda why: why and errors.append(why))

    def report(done):
        done()
        if on_done is not None:
            on_done("; ".join(errors) or None)
    ctx.bridge.in_turn(CLBOSS, report)


def add_tag(ctx, peer_id: str, tag: str, on_done: Done | None = None) -> None:
    assert tag in CLBOSS_TAGS, tag
    def op(done):
        def finish(why):
            done()
            if on_done is not None:
                on_done(why)

        def read(outcome: CallOutcome):
            if not outcome.ok:
                return finish(f"clboss-status: {outcome.error}")
            current = _tags_of(outcome.result, peer_id)
            if tag in current:
                return finish(None)         # already there: not ours to record or remove
            with ctx.db.transaction() as conn:
                # Recorded before the write: after a timeout we cannot tell whether it
                # landed, and a release must still be able to take it back.
                store.add_our_tag(conn, peer_id, tag, ctx.clock.now())
            _write(ctx, peer_id, current | {tag}, written)

        def written(outcome: CallOutcome):
            if not outcome.ok and outcome.status != TIMED_OUT:
                with ctx.db.transaction() as conn:
                    store.drop_our_tag(conn, peer_id, tag)
            finish(None if outcome.ok else f"clboss-unmanage: {outcome.error}")

        ctx.bridge.call(ctx, CLBOSS, "clboss-status", {}, read)
    ctx.bridge.in_turn(CLBOSS, op)


def remove_tag(ctx, peer_id: str, tag: str, on_done: Done | None = None) -> None:
    def op(done):
        def finish(why):
            done()
            if on_done is not None:
                on_done(why)

        if tag not in store.our_tags(ctx.db.conn(), peer_id):
            return finish(None)             # never ours: leave it

        def read(outcome: CallOutcome):
            if not outcome.ok:
                return finish(f"clboss-status: {outcome.error}")
            current = _tags_of(outcome.result, peer_id)
            if tag not in current:
                return forget(None)
            _write(ctx, peer_id, current - {tag}, written)

        def written(outcome: CallOutcome):
            if not outcome.ok:
                return finish(f"clboss-unmanage: {outcome.error}")
            forget(None)

        def forget(why):
            with ctx.db.transaction() as conn:
                store.drop_our_tag(conn, peer_id, tag)
            finish(why)

        ctx.bridge.call(ctx, CLBOSS, "clboss-status", {}, read)
    ctx.bridge.in_turn(CLBOSS, op)


def _tags_of(status, peer_id) -> set[str]:
    unmanaged = status.get("unmanaged") if isinstance(status, dict) else None
    return parse_tags(unmanaged.get(peer_id)) if isinstance(unmanaged, dict) else set()


def _write(ctx, peer_id: str, tags: set[str], on_done) -> None:
    # No spaces: CLBoss refuses "lnfee, open". An empty set hands the node back.
    ctx.bridge.call(ctx, CLBOSS, "clboss-unmanage",
                    {"nodeid": peer_id, "tags": ",".join(sorted(tags))}, on_done)
