"""Call detail records: voice, SMS and data rows for one month of one chunk of customers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.simulate import catalog
from churnml.simulate.population import N_CONTACTS, Population

# Zipf-like weights: a few close contacts get most of the calls.
_SLOT_P = 1.0 / np.arange(1, N_CONTACTS + 1) ** 0.9
_SLOT_P /= _SLOT_P.sum()
ONE_OFF_SHARE = 0.1
DRIFT_SHARE = 0.7  # share of calls going to the competitor's circle at full pull


@dataclass
class PeerLayout:
    """Code space of the peer ids of a chunk: customers, contacts, drift contacts, one-offs."""

    n: int

    @property
    def contacts(self) -> int:
        return self.n

    @property
    def drift(self) -> int:
        return self.n + self.n * N_CONTACTS

    @property
    def one_off(self) -> int:
        return self.drift + 2 * self.n

    @property
    def n_one_off(self) -> int:
        return 2 * self.n + 16

    @property
    def size(self) -> int:
        return self.one_off + self.n_one_off


@dataclass
class CallBatch:
    """CDR rows as numpy arrays (codes into the catalogue; -1 means null)."""

    cust: np.ndarray
    t: np.ndarray
    direction: np.ndarray
    kind: np.ndarray
    duration: np.ndarray
    volume: np.ndarray
    network: np.ndarray
    operator: np.ndarray
    peer: np.ndarray
    dropped: np.ndarray

    def voice_out_minutes(self, n: int) -> np.ndarray:
        sel = (self.kind == catalog.VOICE) & (self.direction == 0)
        return np.bincount(self.cust[sel], self.duration[sel], minlength=n) / 60.0

    def data_mb(self, n: int) -> np.ndarray:
        sel = self.kind == catalog.DATA
        return np.bincount(self.cust[sel], self.volume[sel], minlength=n)


def generate_calls(
    rng: np.random.Generator,
    pop: Population,
    idx: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    lam: np.ndarray,
    dormant: np.ndarray,
    outgoing: np.ndarray,
    drop_prob: np.ndarray,
    pull: np.ndarray,
    target_op: np.ndarray,
    available: np.ndarray,
    ported_to: np.ndarray,
    active_idx: np.ndarray,
    data_session_weight: float = 1.0,
) -> CallBatch:
    """Draw the CDR rows of customers `idx` active on days [lo, hi) with mean row counts `lam`.

    Per-customer arrays (`dormant`, `outgoing` (0..1, damps calls made), `drop_prob`, `pull`,
    `target_op`, `available`, `ported_to`) are indexed by local customer index; `idx`, `lo`,
    `hi`, `lam` are aligned.
    """
    n = len(pop.gid)
    layout = PeerLayout(n)
    counts = rng.poisson(lam)
    pos = np.repeat(np.arange(len(idx)), counts)
    c = idx[pos]
    m = len(c)

    # Kind: dormant lines only receive calls and texts.
    u = rng.random(m)
    w = data_session_weight
    share = pop.data_share[c]
    p_data = np.where(dormant[c], 0.0, w * share / (w * share + 1.0 - share))
    kind = np.where(u < p_data, catalog.DATA, np.where(u < p_data + pop.sms_share[c], 1, 0))
    day = lo[pos] + np.floor(rng.random(m) * (hi - lo)[pos]).astype(np.int64)
    weekend = (day + 3) % 7 >= 5
    # Weekly rhythm: fewer calls at weekends, fewer data sessions on weekdays.
    keep = np.where(
        kind == catalog.DATA, weekend | (rng.random(m) < 0.85), ~weekend | (rng.random(m) < 0.8)
    )
    c, kind, day, weekend = c[keep], kind[keep], day[keep], weekend[keep]
    m = len(c)
    profile = np.where(kind == catalog.DATA, 2, 0) + weekend
    hour = np.empty(m, dtype=np.int64)
    u = rng.random(m)
    for p in range(4):
        sel = profile == p
        hour[sel] = np.searchsorted(catalog.HOUR_CDF[p], u[sel])
    t = day * 86400 + np.minimum(hour, 23) * 3600 + rng.integers(0, 3600, m)

    is_data = kind == catalog.DATA
    # Disengaging customers still receive calls but make fewer of their own.
    p_out = np.where(kind == catalog.VOICE, 0.6, 0.55) * np.sqrt(outgoing[c])
    direction = np.where(is_data | (~dormant[c] & (rng.random(m) < p_out)), 0, 1)

    # Peers: the stable circle, the competitor's circle (grows with the pull), or one-offs.
    network = np.full(m, -1, dtype=np.int64)
    operator = np.full(m, -1, dtype=np.int64)
    peer = np.full(m, -1, dtype=np.int64)
    v = rng.random(m)
    one_off = ~is_data & (v < ONE_OFF_SHARE)
    drift = ~is_data & ~one_off & (v < ONE_OFF_SHARE + DRIFT_SHARE * pull[c])
    circle = ~is_data & ~one_off & ~drift

    ci = np.flatnonzero(circle)
    slot = rng.choice(N_CONTACTS, size=len(ci), p=_SLOT_P)
    cc = c[ci]
    ctype = pop.contact_type[cc, slot]
    target = pop.contact_target[cc, slot]
    on = ctype == catalog.ON_NET
    moved = on & (ported_to[target] >= 0)
    network[ci] = np.where(moved, catalog.OFF_NET, ctype)
    operator[ci] = np.where(
        moved,
        ported_to[target],
        np.where(ctype == catalog.OFF_NET, pop.contact_operator[cc, slot], -1),
    )
    peer[ci] = np.where(on, target, layout.contacts + cc * N_CONTACTS + slot)
    # Contacts not (or no longer) with us and not reachable as a ported number: no call.
    gone = np.zeros(m, dtype=bool)
    gone[ci] = on & ~moved & ~available[target]

    di = np.flatnonzero(drift)
    network[di] = catalog.OFF_NET
    operator[di] = target_op[c[di]]
    peer[di] = layout.drift + 2 * c[di] + rng.integers(0, 2, len(di))

    oi = np.flatnonzero(one_off)
    onet = rng.choice(4, size=len(oi), p=[0.35, 0.4, 0.15, 0.1])
    if len(active_idx) == 0:  # nobody on the network to call
        onet = np.where(onet == catalog.ON_NET, catalog.OFF_NET, onet)
        active_idx = np.zeros(1, dtype=np.int64)
    network[oi] = onet
    operator[oi] = np.where(
        onet == catalog.OFF_NET, rng.choice(3, size=len(oi), p=catalog.COMPETITOR_SHARE), -1
    )
    random_sub = active_idx[rng.integers(0, len(active_idx), len(oi))]
    peer[oi] = np.where(
        onet == catalog.ON_NET,
        random_sub,
        layout.one_off + rng.integers(0, layout.n_one_off, len(oi)),
    )

    # Durations and volumes are drawn only for the rows of their kind.
    is_voice = kind == catalog.VOICE
    vi = np.flatnonzero(is_voice)
    seconds = np.minimum(np.exp(rng.normal(4.1, 1.0, len(vi))), 7200.0)
    cut = rng.random(len(vi)) < drop_prob[c[vi]]
    seconds = np.where(cut, seconds * rng.uniform(0.05, 0.9, len(vi)), seconds)
    duration = np.zeros(m, dtype=np.int64)
    duration[vi] = np.maximum(seconds, 1.0).astype(np.int64)
    dropped = np.zeros(m, dtype=bool)
    dropped[vi] = cut
    xi = np.flatnonzero(is_data)
    volume = np.full(m, np.nan)
    mu = np.log(25.0) + 0.5 * np.log(pop.activity[c[xi]])
    volume[xi] = np.round(np.exp(rng.normal(mu, 1.1)), 2) + 0.01

    # Rows are grouped by customer already (np.repeat); order each customer's rows by time.
    sel = np.flatnonzero(~gone)
    key = c[sel] * np.int64(1 << 32) + (t[sel] - t.min(initial=0))
    sel = sel[np.argsort(key)]
    return CallBatch(
        cust=c[sel],
        t=t[sel],
        direction=direction[sel],
        kind=kind[sel],
        duration=duration[sel],
        volume=volume[sel],
        network=network[sel],
        operator=operator[sel],
        peer=peer[sel],
        dropped=dropped[sel],
    )
