"""When the operator re-reconciles a Deployment without a watch event (pure).

A Deployment is reconciled on every change (kopf's change handlers) and otherwise by a timer. The
timer used to fire every ``resync_interval`` (15 s by default), so a rollout advanced, and a
breached canary was rolled back, only on that grid: a 2 s analysis interval became 15 s, and a
breach was acted on up to ``interval + resync`` after it happened. Now the timer ticks every
``timer_tick_s`` (at most ``MAX_TICK_S``), and each tick reconciles only when the object is due:
at the rollout's next wake (``rollout.wake_at``: an analysis tick, the end of a hold, a drain, the
progress deadline) or ``resync_interval`` after its last reconcile, whichever is first. A wake
closer than one tick is slept to inside the tick, so wakes are kept to the event loop's precision
and a tick that is not due costs a dictionary lookup.

Pokes: a child Deployment's ready pods changing (seen by the child watch, ``observed``) pokes its
owner. A tick that is not due listens for a poke for ``LISTEN_SHARE`` of its length (the timer is
sharp, so the next tick starts right after); a poke makes the object due at once. So readiness
reaches the owner's status within moments, not at the next resync.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

MAX_TICK_S: Final = 1.0
"""Longest gap between two timer ticks of one Deployment: bounds how late a wake scheduled less
than one tick after a change can be acted on (other wakes are slept to precisely)."""


LISTEN_SHARE: Final = 0.9
"""Share of a tick an idle tick listens for a poke; the rest is the gap to the next (sharp) tick,
in which a poke waits, set, for that tick."""


def timer_tick_s(resync_s: float) -> float:
    """The timer's interval: one resync when that is shorter, else ``MAX_TICK_S``."""
    return min(resync_s, MAX_TICK_S)


def next_due_in_s(wake: datetime | None, now: datetime, resync_s: float) -> float:
    """Seconds from ``now`` until the next reconcile is due.

    Args:
        wake: the rollout's next wake (``rollout.wake_at``); None when nothing is scheduled.
        now: the time the last reconcile ran at.
        resync_s: the level-based resync period (children readiness has no event on the parent).

    Returns:
        ``resync_s`` without a wake, else the time to the wake, clamped to ``[0, resync_s]``.
    """
    if wake is None:
        return resync_s
    return max(0.0, min(resync_s, (wake - now).total_seconds()))


def tick_action(due_in_s: float | None, tick_s: float) -> float | None:
    """What one timer tick does for an object due in ``due_in_s`` seconds.

    Args:
        due_in_s: seconds until the object is due (negative: overdue); None when it has never been
            reconciled by this process (it is due at once).
        tick_s: the timer's interval.

    Returns:
        None to skip this tick (the object is due after the next tick), else the seconds to sleep
        before reconciling (0: now).
    """
    if due_in_s is None or due_in_s <= 0:
        return 0.0
    if due_in_s > tick_s:
        return None
    return due_in_s


def listen_s(sleep_s: float | None, tick_s: float) -> float:
    """How long one tick waits for a poke before it gives up or reconciles.

    Args:
        sleep_s: what ``tick_action`` said: None (not due in this tick) or seconds until due.
        tick_s: the timer's interval.

    Returns:
        Until the object is due when that falls in this tick (a poke cuts the wait short),
        else ``LISTEN_SHARE`` of the tick (a tick that hears no poke then returns).
    """
    return LISTEN_SHARE * tick_s if sleep_s is None else sleep_s
