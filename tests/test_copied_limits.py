"""Limits the gateway keeps a copy of, for its forms, are the ones the
service that enforces them applies: a copy that drifts offers a choice the
service refuses (or hides one it allows)."""
from __future__ import annotations


def test_the_office_s_furthest_publication_is_registration_s():
    from gateway.portal import office
    from registration.domain import schedule

    assert office.MAX_DAYS_AHEAD == schedule.MAX_DAYS_AHEAD


def test_the_portal_s_word_on_a_name_too_long_is_identity_s_limit():
    from gateway.portal import i18n
    from identity.domain import accounts

    assert f"at most {accounts.MAX_DISPLAY_NAME_LENGTH} characters" in i18n.REASONS["display_name_length"]
