"""How many SIP transactions and dialogs the core keeps, in total and per source address (sans-IO).

The SIP core asks :meth:`ResourceBounds.refuses` before it opens a server transaction for a new request
and answers a refusal with a stateless 503 and Retry-After.  It reports what it opens and closes, so the
per-source tables hold only sources with something alive.  Trusted sources skip the per-source limits,
not the totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CoreLimits", "ResourceBounds"]

# Requests that free resources: refusing them for lack of room would only keep more.
NEVER_REFUSED = frozenset({"BYE", "CANCEL", "ACK"})


@dataclass(frozen=True, slots=True)
class CoreLimits:
    """0 = no limit."""

    max_transactions: int = 0
    max_transactions_per_source: int = 0
    max_dialogs: int = 0
    max_dialogs_per_source: int = 0
    retry_after: int = 5  # seconds, in the 503's Retry-After


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class ResourceBounds:
    def __init__(self, limits: CoreLimits | None = None) -> None:
        self.limits = limits if limits is not None else CoreLimits()
        self.is_trusted: Callable[[str], bool] = lambda ip: False
        self.transactions_per_source: dict[str, int] = {}
        self.dialogs_per_source: dict[str, int] = {}
        self._dialog_source: dict[str, str] = {}

    def refuses(self, method: str, new_dialog: bool, ip: str, transactions: int, dialogs: int) -> bool:
        """Whether a new request (``new_dialog``: an INVITE outside a dialog) from ``ip`` finds no room,
        given the core's current ``transactions`` and ``dialogs``."""
        if method in NEVER_REFUSED:
            return False
        limits = self.limits
        if limits.max_transactions and transactions >= limits.max_transactions:
            return True
        if new_dialog and limits.max_dialogs and dialogs >= limits.max_dialogs:
            return True
        per_tx, per_dialog = limits.max_transactions_per_source, limits.max_dialogs_per_source
        if not per_tx and not (new_dialog and per_dialog):
            return False
        if self.is_trusted(ip):
            return False
        if per_tx and self.transactions_per_source.get(ip, 0) >= per_tx:
            return True
        return new_dialog and bool(per_dialog) and self.dialogs_per_source.get(ip, 0) >= per_dialog

    def transaction_opened(self, ip: str) -> None:
        self.transactions_per_source[ip] = self.transactions_per_source.get(ip, 0) + 1

    def transaction_closed(self, ip: str) -> None:
        _decrement(self.transactions_per_source, ip)

    def dialog_opened(self, dialog_id: str, ip: str) -> None:
        if dialog_id not in self._dialog_source:
            self._dialog_source[dialog_id] = ip
            self.dialogs_per_source[ip] = self.dialogs_per_source.get(ip, 0) + 1

    def dialog_ended(self, dialog_id: str) -> None:
        ip = self._dialog_source.pop(dialog_id, None)
        if ip is not None:
            _decrement(self.dialogs_per_source, ip)
