"""Payment providers behind one port (base.PaymentProvider); the sandbox
adapter stands in for a real acquirer in development and tests."""
from __future__ import annotations

from ..settings import BillingSettings
from .base import MeteredProvider, PaymentProvider
from .sandbox import SandboxProvider


def build_provider(settings: BillingSettings, billing_database_url: str, *, pool_size: int = 4) -> PaymentProvider:
    """The provider this deployment uses: the sandbox, until a real acquirer's adapter exists."""
    sandbox = SandboxProvider.connect(
        settings.sandbox_database_url or billing_database_url, pool_size=pool_size,
        settle_delay=settings.sandbox_settle_delay, late_capture_delay=settings.sandbox_late_capture_delay,
    )
    return MeteredProvider(sandbox)
