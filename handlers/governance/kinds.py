"""The action kinds, in one table: how each is checked when proposed and how it executes.

- coordinated kinds go through an intent lock (handlers/intents): executing the action
  announces the intent, and the action ends when its intent does;
- local kinds run through the bridge on this node only (CLBoss);
- vote kinds open a proposal the members vote on (handlers/council): executing a `ban`
  action opens the ban proposal with our yes vote; the members' votes decide the ban.

A kind's `check(target, amount_sat, params)` returns its normalized params or raises a
JSON-RPC error naming the bad parameter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyln.client import RpcException

from handlers.bridge import clboss
from handlers.council import proposals
from handlers.frame import errors
from handlers.intents import rebalance
from handlers.wire import messages
from storage import bridge as bridge_store

COORDINATED, LOCAL, VOTES = "intent_lock", "bridge", "council"
MAX_SAT = 21_000_000 * 100_000_000
REBALANCE_PARAMS = messages.REBALANCE_FIELDS


@dataclass(frozen=True)
class Kind:
    name: str
    route: str                           # COORDINATED | LOCAL | VOTES
    needs_amount: bool
    params: tuple[str, ...] = ()         # the extra parameters it takes
    # LOCAL and VOTES: run(ctx, action, done(why | None)) and, after a restart mid-run,
    # effect_exists(ctx, action) -> True | None (cannot tell).
    run: Callable | None = None
    effect_exists: Callable | None = None

    def check(self, target, amount_sat, params: dict) -> dict:
        try:
            messages.node_id(target)
        except ValueError as e:
            raise errors.bad_param("target", str(e)) from None
        if self.needs_amount:
            if type(amount_sat) is not int or not 0 < amount_sat <= MAX_SAT:
                raise errors.bad_param("amount_sat", f"a positive integer is required for "
                                                     f"{self.name}")
        elif amount_sat is not None:
            raise errors.bad_param("amount_sat", f"not used by {self.name}")
        for name, value in params.items():
            if name not in self.params and value is not None:
                raise errors.bad_param(name, f"not used by {self.name}")
        if self.route == COORDINATED:
            # The intent's own checks, by format (the channels are checked on announce).
            return rebalance.params(self.name, {k: params.get(k) for k in REBALANCE_PARAMS})
        return {}


def _clboss_ignore(ctx, action, done) -> None:
    clboss.ignore(ctx, action["target"], done)


def _clboss_ignored(ctx, action) -> bool | None:
    # Recorded before CLBoss is written (handlers.bridge.clboss): ours means it was asked.
    return True if clboss.OPEN in bridge_store.our_tags(ctx.db.conn(), action["target"]) \
        else None


def _open_ban(ctx, action, done) -> None:
    # On the worker: signing and broadcasting the proposal are quick local calls.
    try:
        proposals.open_ban_proposal(ctx, action["target"], action.get("reason"))
    except RpcException as e:     # not a member, the admin, banned already, our tier...
        return done(f"ban proposal not opened: {e.message}")
    done(None)


def _ban_opened(ctx, action) -> bool | None:
    # Our yes vote is stored with the proposal: an open or decided ban on the target.
    return True if proposals.ban_proposed(ctx, action["target"]) else None


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("channel_open", COORDINATED, needs_amount=True),
    Kind("rebalance", COORDINATED, needs_amount=True, params=REBALANCE_PARAMS),
    Kind("clboss_ignore", LOCAL, needs_amount=False, run=_clboss_ignore,
         effect_exists=_clboss_ignored),
    Kind("ban", VOTES, needs_amount=False, run=_open_ban, effect_exists=_ban_opened),
)}
# Every parameter some kind takes beside kind, target and amount_sat.
ALL_PARAMS = tuple(dict.fromkeys(p for k in KINDS.values() for p in k.params))
