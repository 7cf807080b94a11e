"""Billing's settings, read from the environment at start-up, without I/O."""
from __future__ import annotations

import pytest

from billing.settings import BillingSettings


def test_a_batch_size_of_zero_is_refused_at_start_up(monkeypatch):
    # Every timer takes at most a batch: with 0 the worker ran, healthy to
    # every probe, and never settled a payment, reconciled one or refunded a fee.
    monkeypatch.setenv("BILLING_BATCH_SIZE", "0")
    with pytest.raises(SystemExit, match="BILLING_BATCH_SIZE"):
        BillingSettings.from_env()
    monkeypatch.setenv("BILLING_BATCH_SIZE", "1")
    assert BillingSettings.from_env().batch_size == 1
