"""The working calendar's overrides: next year's holidays before the
statutory library knows them. Setting one re-rates open tickets at once."""
from __future__ import annotations

import datetime as dt

import grpc
import pytest
from ticketing_testkit import OFFICE, instant, open_request, refused, shanghai
from tuoguan.ticketing.v1 import ticketing_pb2 as pb

pytestmark = pytest.mark.integration


def day(text: str, working: bool, note: str = "") -> pb.PutCalendarDayRequest:
    return pb.PutCalendarDayRequest(day=pb.CalendarDay(day=text, working=working, note=note))


def test_an_override_for_a_year_the_library_does_not_know_moves_the_sla(stub, people, clock):
    admin, clinician, dispatcher = people.admin(), people.clinician(), people.dispatcher()
    listed = stub.ListCalendarDays(pb.ListCalendarDaysRequest(year=2027), metadata=dispatcher.md)
    # chinesecalendar 1.11 stops at 2026: 2027 falls back to Monday-Friday until someone says otherwise.
    assert not listed.statutory_data and listed.statutory_data_until == "2026-12-31" and not listed.days

    # Friday 2027-01-29 16:00 on office hours (08:00-12:00, 13:30-17:30): a P4 ticket's first response (8 h of
    # service time) lands on Monday 2027-02-01 ... unless Monday is a holiday.
    clock.set(shanghai(2027, 1, 29, 16, 0))
    ticket = stub.OpenTicket(open_request(OFFICE, pb.LEVEL_LOW, pb.LEVEL_LOW), metadata=clinician.md).ticket
    before = instant(ticket.sla.response_due)
    assert before.date() == dt.date(2027, 2, 1)

    put = stub.PutCalendarDay(day("2027-02-01", False, "假设的调休"), metadata=admin.md).day
    assert (put.day, put.working, put.note) == ("2027-02-01", False, "假设的调休")
    rated = stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.ticket_id), metadata=clinician.md).ticket
    assert instant(rated.sla.response_due) == before + dt.timedelta(days=1)
    assert [d.day for d in stub.ListCalendarDays(pb.ListCalendarDaysRequest(year=2027),
                                                 metadata=admin.md).days] == ["2027-02-01"]

    stub.PutCalendarDay(pb.PutCalendarDayRequest(day=pb.CalendarDay(day="2027-02-01"), remove=True),
                        metadata=admin.md)
    again = stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.ticket_id), metadata=clinician.md).ticket
    assert instant(again.sla.response_due) == before
    assert refused(stub.PutCalendarDay, pb.PutCalendarDayRequest(day=pb.CalendarDay(day="2027-02-01"), remove=True),
                   metadata=admin.md).code == grpc.StatusCode.NOT_FOUND


def test_only_admins_change_the_calendar_and_bad_days_are_refused(stub, people):
    r = refused(stub.PutCalendarDay, day("2027-02-01", False), metadata=people.dispatcher().md)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED
    r = refused(stub.ListCalendarDays, pb.ListCalendarDaysRequest(year=2027), metadata=people.clinician().md)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED
    r = refused(stub.PutCalendarDay, day("2027-02-30", False), metadata=people.admin().md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "day.day")
    r = refused(stub.ListCalendarDays, pb.ListCalendarDaysRequest(year=1999), metadata=people.admin().md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "year")


def test_the_years_with_overrides_are_those_the_calendar_knows_beyond_the_statutory_data(stub, people, store):
    admin = people.admin()
    assert store.override_years(dt.date(2026, 11, 28)) == set()
    for text, working in (("2027-01-01", False), ("2027-10-07", False), ("2029-05-01", False), ("2025-10-01", False)):
        stub.PutCalendarDay(day(text, working), metadata=admin.md)
    # From this year on (last year's corrections are no news of the next).
    assert store.override_years(dt.date(2026, 11, 28)) == {2027, 2029}
    assert store.override_years(dt.date(2027, 1, 1)) == {2027, 2029}
