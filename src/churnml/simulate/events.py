"""Transfers, complaints, bills and payments: per-month draws accumulated over a chunk."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from churnml.simulate import catalog


def daytime(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Seconds since epoch: a day uniformly in [lo, hi) (days) at an office-hours time."""
    day = lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    hour = np.minimum(np.searchsorted(catalog.DAYTIME_CDF, rng.random(len(lo))), 23)
    return day * 86400 + hour * 3600 + rng.integers(0, 3600, len(lo))


@dataclass
class Ledger:
    """Column lists of one event table; `add` appends a batch, `columns` concatenates them."""

    names: tuple[str, ...]
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **columns: np.ndarray) -> None:
        size = len(next(iter(columns.values())))
        if size == 0:
            return
        for name in self.names:
            self.parts.setdefault(name, []).append(np.asarray(columns[name]))

    def columns(self) -> dict[str, np.ndarray]:
        out = {}
        for name in self.names:
            chunks = self.parts.get(name)
            out[name] = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        return out


@dataclass
class Bills:
    """Growing bill arrays of a chunk; payments are decided when the bill is issued."""

    cust: list[np.ndarray] = field(default_factory=list)
    month: list[np.ndarray] = field(default_factory=list)
    issued: list[np.ndarray] = field(default_factory=list)
    due: list[np.ndarray] = field(default_factory=list)
    amount: list[np.ndarray] = field(default_factory=list)
    paid: list[np.ndarray] = field(default_factory=list)  # seconds, -1 while unpaid

    def add(self, cust, month, issued, due, amount, paid) -> None:
        for lst, arr in (
            (self.cust, cust),
            (self.month, month),
            (self.issued, issued),
            (self.due, due),
            (self.amount, amount),
            (self.paid, paid),
        ):
            lst.append(np.asarray(arr))
        self._consolidate()

    def _consolidate(self) -> None:
        for lst in (self.cust, self.month, self.issued, self.due, self.amount, self.paid):
            if len(lst) > 1:
                lst[:] = [np.concatenate(lst)]

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self.cust:
            empty_i = np.zeros(0, dtype=np.int64)
            return empty_i, empty_i, empty_i, empty_i, np.zeros(0), empty_i
        return (
            self.cust[0],
            self.month[0],
            self.issued[0],
            self.due[0],
            self.amount[0],
            self.paid[0],
        )

    def overdue_count(self, day: int, n: int) -> np.ndarray:
        """Bills due before `day` and not paid by then, per customer."""
        if not self.cust:
            return np.zeros(n, dtype=np.int64)
        cust, _, _, due, amount, paid = self.arrays()
        t = day * 86400
        sel = (due < day) & (amount > 0) & ((paid < 0) | (paid >= t))
        return np.bincount(cust[sel], minlength=n)

    def settle(self, payer: np.ndarray, when: np.ndarray) -> None:
        """Customers in `payer` pay every unpaid bill issued before their `when` (seconds)."""
        if not self.cust:
            return
        cust, _, issued, _, _, paid = self.arrays()
        sel = payer[cust] & (paid < 0) & (issued * 86400 < when[cust])
        paid[sel] = when[cust[sel]]


def draw_complaint_channel(rng: np.random.Generator, severity: np.ndarray, open_before: np.ndarray):
    """Channel codes: regulator escalations for severe or repeated grievances."""
    k = len(severity)
    p_reg = 0.015 + 0.08 * (severity == 3) + 0.06 * open_before
    base = rng.choice(3, size=k, p=[0.55, 0.2, 0.25])
    return np.where(rng.random(k) < p_reg, catalog.REGULATOR, base)
