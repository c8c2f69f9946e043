"""Signals sent by Django's code inside the bridge.

Django's ``Signal.send`` calls sync receivers in order, then runs async receivers
concurrently through ``async_to_sync``, which cannot run on the event loop's thread.
Inside the bridge the async receivers are awaited in the task instead. Sync receivers
are called in the bridge too, as Django's ``send`` calls them: their own queries then
run natively, inside the caller's transaction, with no thread hop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.dispatch import Signal
from django.dispatch.dispatcher import NO_RECEIVERS

from . import bridge

_original_send = Signal.send


def send(self: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
    """Signal.send: in the bridge, await async receivers in the task; else Django's."""
    # First, as Django's own send() does: most sends (pre_init/post_init, once per object
    # read) have no receiver, and this wrapper must cost them nothing more.
    if not self.receivers or self.sender_receivers_cache.get(sender) is NO_RECEIVERS:
        return []
    if not bridge.in_bridge():
        return _original_send(self, sender, **named)
    sync_receivers, async_receivers = self._live_receivers(sender)
    responses = [
        (receiver, receiver(signal=self, sender=sender, **named)) for receiver in sync_receivers
    ]
    if async_receivers:
        results = bridge.await_(
            asyncio.gather(
                *(receiver(signal=self, sender=sender, **named) for receiver in async_receivers)
            )
        )
        responses.extend(zip(async_receivers, results, strict=True))
    return responses
