"""Custom notifications about pending actions, for other plugins and bots (declared in the
manifest from TOPICS). Sent from a dispatcher observer, so only once the transition that
causes one has committed, whatever fired it (a command, the oracle's answer, a deadline).

Each payload is the action as `hive-action` shows it (without its transitions), with
`state` the state the transition entered."""
from __future__ import annotations

from machines.pending_action import SPEC

PROPOSED = "hive_action_proposed"            # submitted: decided at once, or waiting
AWAITING = "hive_action_awaiting_approval"   # the operator is needed (with waiting_reason)
DECIDED = "hive_action_decided"              # approved, rejected or expired
FINISHED = "hive_action_finished"            # executed or failed
TOPICS = (PROPOSED, AWAITING, DECIDED, FINISHED)


def topics_for(trigger: str, dest: str) -> tuple[str, ...]:
    out = []
    if trigger == "submit":
        out.append(PROPOSED)
    if dest == "awaiting_approval":
        out.append(AWAITING)
    if dest in ("approved", "rejected", "expired"):
        out.append(DECIDED)
    if dest in ("executed", "failed"):
        out.append(FINISHED)
    return tuple(out)


def install(ctx, view) -> None:
    """Notify on every pending_action transition; `view(ctx, action_id)` makes the payload."""
    def observe(outcome) -> None:
        if outcome.kind != SPEC.kind or ctx.notifier is None or outcome.internal:
            return
        topics = topics_for(outcome.trigger, outcome.dest)
        if not topics:
            return
        payload = view(ctx, outcome.instance_id)
        if payload is None:
            return
        payload = {**payload, "state": outcome.dest, "trigger": outcome.trigger}
        for topic in topics:
            ctx.notifier.notify(topic, payload)
    ctx.dispatcher.observers.append(observe)
