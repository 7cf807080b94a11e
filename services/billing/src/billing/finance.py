"""Finance's reads: the trial balance of the ledger and the daily
reconciliation of the ledger against the provider's records."""
from __future__ import annotations

import datetime as dt

from .domain import ledger, reconciliation
from .providers.base import PaymentProvider
from .store import BillingStore


def ledger_balances(store: BillingStore) -> ledger.TrialBalance:
    # One snapshot: the accounts and the sums come from the same transaction.
    with store.database.transaction() as cur:
        accounts = store.accounts(cur)
        totals = store.account_totals(cur)
    return ledger.trial_balance(accounts, totals)


def reconciliation_report(store: BillingStore, provider: PaymentProvider,
                          business_date: dt.date) -> reconciliation.ReconciliationReport:
    start, end = reconciliation.business_day(business_date)
    with store.database.transaction() as cur:
        ours = store.ledger_movements(cur, start, end)
    theirs = provider.statement(start, end)
    return reconciliation.reconcile(business_date, ours, theirs)
