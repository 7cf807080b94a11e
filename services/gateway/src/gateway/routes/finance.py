"""Finance: the ledger and the daily reconciliation (billing)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from tuoguan.billing.v1 import billing_pb2

from ..convert import date_text, to_dict
from . import API_PREFIX
from ..deps import CallerServices
from ..models import Ledger, ReconciliationReport

router = APIRouter(prefix=API_PREFIX + "/finance", tags=["finance"])


@router.get("/ledger", response_model=Ledger, summary="Balance of each ledger account; debits equal credits")
async def ledger(services: CallerServices):
    return to_dict(await services.billing.GetLedgerBalances(billing_pb2.GetLedgerBalancesRequest()))


@router.get("/reconciliation", response_model=ReconciliationReport,
            summary="Ledger against the payment provider for one business day (Asia/Shanghai)")
async def reconciliation(services: CallerServices, business_date: dt.date | None = None):
    return to_dict(await services.billing.GetReconciliationReport(
        billing_pb2.GetReconciliationReportRequest(business_date=date_text(business_date))))
