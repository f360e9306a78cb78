"""Fixed market catalogue of the simulator: tariff plans, regions, competitors, daily rhythm."""

from __future__ import annotations

import numpy as np

from churnml import contract

CAUSES = tuple(contract.CAUSE_FAMILIES)
# Causes no table records: they drive churn in the truth but leave no trace in the data.
HIDDEN_CAUSES = ("hidden_offer", "hidden_move", "hidden_frustration")
ALL_CAUSES = (*CAUSES, *HIDDEN_CAUSES)

# Tariff plans: prepaid bundles first, then postpaid plans (ordered by fee within each type).
PLAN_IDS = np.array(["PRE_BASIC", "PRE_SMART", "PRE_MAX", "POST_S", "POST_M", "POST_L", "POST_XL"])
PLAN_FEE = np.array([0.0, 10.0, 20.0, 15.0, 25.0, 40.0, 60.0])
PLAN_MINUTES = np.array([0.0, 150.0, 500.0, 200.0, 600.0, 3000.0, 3000.0])
PLAN_DATA_MB = np.array([0.0, 3.0, 10.0, 2.0, 8.0, 30.0, 100.0]) * 1024.0
PLAN_POSTPAID = np.array([False, False, False, True, True, True, True])
PREPAID_PLANS = np.array([0, 1, 2])
POSTPAID_PLANS = np.array([3, 4, 5, 6])
EXTRA_MINUTE_PRICE = 0.08
EXTRA_GB_PRICE = 2.0

# Regions with their population weight and base dropped-call rate.
REGIONS = np.array(["Capital", "Coast", "Plains", "Lakes", "Highlands", "Islands"])
REGION_WEIGHT = np.array([0.30, 0.20, 0.18, 0.14, 0.10, 0.08])
REGION_DROP_RATE = np.array([0.006, 0.010, 0.014, 0.018, 0.032, 0.045])

COMPETITORS = np.array(["OrbitMobile", "NovaTel", "PulseCom"])
COMPETITOR_SHARE = np.array([0.45, 0.35, 0.20])
# PulseCom is the low-cost brand: price-sensitive customers lean to it.
COMPETITOR_LOW_COST = 2

PEER_NETWORKS = np.array(contract.PEER_NETWORKS)
ON_NET, OFF_NET, FIXED, INTERNATIONAL = 0, 1, 2, 3
KINDS = np.array(contract.CALL_KINDS)
VOICE, SMS, DATA = 0, 1, 2
DIRECTIONS = np.array(contract.CALL_DIRECTIONS)

TERMINATION_REASONS = np.array(contract.TERMINATION_REASONS)
VOLUNTARY, PORT_OUT, NON_PAYMENT, OTHER = 0, 1, 2, 3

TRANSFER_KINDS = np.array(contract.TRANSFER_KINDS)
COMPLAINT_CATEGORIES = np.array(contract.COMPLAINT_CATEGORIES)
COMPLAINT_CHANNELS = np.array(contract.COMPLAINT_CHANNELS)
REGULATOR = 3

# Relative activity by hour of day (0..23): weekday and weekend, voice/SMS and data.
_VOICE_WEEKDAY = [0.4, 0.2, 0.1, 0.1, 0.1, 0.3, 1.0, 2.5, 4.0, 5.0, 5.5, 5.5,
                  6.0, 5.8, 5.5, 5.5, 6.0, 6.8, 7.0, 6.8, 6.0, 4.5, 2.8, 1.2]  # fmt: skip
_VOICE_WEEKEND = [0.8, 0.4, 0.2, 0.1, 0.1, 0.2, 0.4, 1.0, 2.0, 3.5, 5.0, 6.0,
                  6.5, 6.5, 6.0, 6.0, 6.2, 6.5, 6.8, 6.5, 6.0, 5.0, 3.5, 1.8]  # fmt: skip
_DATA_WEEKDAY = [1.2, 0.6, 0.3, 0.2, 0.2, 0.4, 1.5, 3.5, 4.5, 4.0, 4.0, 4.5,
                 5.5, 5.0, 4.5, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0, 7.0, 3.5]  # fmt: skip
_DATA_WEEKEND = [2.0, 1.2, 0.6, 0.3, 0.2, 0.3, 0.6, 1.5, 3.0, 4.5, 5.5, 6.0,
                 6.5, 6.5, 6.0, 6.0, 6.5, 7.0, 7.5, 8.5, 9.5, 9.5, 8.0, 4.5]  # fmt: skip
HOUR_CDF = np.cumsum(
    [
        np.asarray(p) / np.sum(p)
        for p in (_VOICE_WEEKDAY, _VOICE_WEEKEND, _DATA_WEEKDAY, _DATA_WEEKEND)
    ],
    axis=1,
)
# Office-hours profile for customer-care, porting and payment events.
_DAYTIME = [0.05, 0.02, 0.01, 0.01, 0.01, 0.05, 0.3, 1.0, 3.0, 5.0, 6.0, 6.0,
            5.5, 5.5, 6.0, 6.0, 5.5, 5.0, 4.5, 3.5, 2.5, 1.5, 0.8, 0.2]  # fmt: skip
DAYTIME_CDF = np.cumsum(np.asarray(_DAYTIME) / np.sum(_DAYTIME))
