"""Billing: patients' registration fees on a double-entry ledger in integer
fen, taken through a payment provider behind a port, reconciled daily."""
