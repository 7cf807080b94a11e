"""Limits the gateway keeps a copy of, for its forms, are the ones the
service that enforces them applies: a copy that drifts offers a choice the
service refuses (or hides one it allows)."""
from __future__ import annotations


def test_the_office_s_furthest_publication_is_registration_s():
    from gateway.portal import office
    from registration.domain import schedule

    assert office.MAX_DAYS_AHEAD == schedule.MAX_DAYS_AHEAD
