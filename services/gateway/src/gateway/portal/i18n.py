"""The portal's languages: Simplified Chinese by default, English by choice.

Text lives in gettext catalogues (``locale/<lang>/LC_MESSAGES/messages.po``,
maintained with Babel: ``make i18n``), compiled in memory at start-up so that
the .po files are the only copy. Numbers, money and dates are formatted by
Babel with the locale's own rules.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
from decimal import Decimal
from importlib import resources
from zoneinfo import ZoneInfo

from babel import Locale, negotiate_locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations

LANGUAGES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
HOSPITAL_TIME = ZoneInfo("Asia/Shanghai")


def hospital_today(now: dt.datetime | None = None) -> dt.date:
    """The hospital's date, whatever the server's zone (a container's is UTC:
    its date is yesterday's until 08:00 in Shanghai, through the 07:00 release)."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(HOSPITAL_TIME).date()


def department_name(department, language: str) -> str:
    """A department's name in the page's language: its English one in English when it has one, its
    Chinese one otherwise (patients' pages and the office's alike)."""
    return department.name_en if language == "en" and department.name_en else department.name


def speciality(doctor, language: str) -> str:
    """A doctor's speciality in the page's language, as department_name does for departments."""
    return doctor.speciality_en if language == "en" and doctor.speciality_en else doctor.speciality


def N_(message: str) -> str:
    """Marks text for the catalogue; it is translated where it is shown."""
    return message


# What each refusal's reason code means to a patient or to the office. Codes come
# from the services' trailing metadata; an unlisted code falls back to a general message.
REASONS = {
    "slot_full": N_("This time slot is fully booked. Please choose another time."),
    "slot_in_past": N_("This time slot has already passed."),
    "slot_not_released": N_("This time slot is not open for booking yet."),
    "session_suspended": N_("The doctor's clinic for this session has been suspended."),
    "one_per_department_per_day": N_("You already have a booking in this department on that day."),
    "active_booking_cap": N_("You have reached the limit of upcoming bookings. Cancel one before booking another."),
    "overlapping_booking": N_("You already have a booking at an overlapping time."),
    "cancel_cutoff_passed": N_("It is too late to cancel this booking online. Please ask at the registration desk."),
    "booking_not_cancellable": N_("This booking can no longer be cancelled."),
    "visit_started": N_("The visit has started, so the booking can no longer be cancelled: check the patient "
                        "in or mark a no-show."),
    "booking_not_held": N_("This hold has ended (it expired or was released). Please choose a time again."),
    "payment_failed_hold_released": N_("The payment did not go through, so the hold was released."),
    "payment_in_progress": N_("This payment is still being processed. Please wait a moment."),
    "already_paid": N_("This booking has already been paid."),
    "no_fee_due": N_("There is no fee to pay for this booking."),
    "unknown_payment_method": N_("This payment method is not accepted."),
    "payment_provider_unavailable": N_("The payment service is not answering. Please try again shortly."),
    "booking_not_confirmed": N_("Only a confirmed booking has a registration slip."),
    "visit_not_started": N_("The visit has not started yet, so it cannot be marked as a no-show."),
    "session_already_suspended": N_("This session is already suspended."),
    "session_over": N_("This session is over: mark its bookings checked in or no-show instead."),
    "not_service_day": N_("Check-in is open on the day of the visit only."),
    "booked_again": N_("The patient has booked this department again today: check that booking in instead."),
    "booked_over": N_("The patient has since booked another visit at this time: check that one in, or cancel it "
                      "first."),
    "template_exists": N_("This doctor already has a session template for that weekday and period, and it was "
                          "not changed: to change it, use Edit on its row in the list."),
    "template_overlaps": N_("These hours overlap another of this doctor's session templates on that weekday."),
    "bad_credentials": N_("The phone number or password is not correct."),
    "too_many_attempts": N_("Too many attempts. Please wait a few minutes and try again."),
    "phone_taken": N_("An account with this phone number already exists. Sign in, or reset its password "
                      "with the code you received."),
    "phone_format": N_("Enter an 11-digit mainland mobile number."),
    "password_too_short": N_("The password is too short (at least 8 characters)."),
    "password_too_long": N_("The password is too long."),
    "password_letters_and_digits": N_("The password needs both letters and digits."),
    "password_common": N_("This password is one of the most commonly used, so it is easy to guess. "
                          "Please choose another."),
    "password_contains_phone": N_("The password must not contain your phone number."),
    "password_contains_login": N_("The password must not contain the account's staff ID."),
    "display_name_characters": N_("The name contains characters that are not allowed."),
    "display_name_length": N_("The name is too long (at most 40 characters)."),
    "required": N_("This field is required."),
    "reset_code_invalid": N_("The verification code is not correct. Request a new one if needed."),
    "reset_code_expired": N_("The verification code has expired. Request a new one."),
    "idempotency_key_reused": N_("This form was already sent with other details. Please open the page again."),
    "sign_up_code_invalid": N_("The verification code is not correct. Request a new one if needed."),
    "sign_up_code_expired": N_("The verification code has expired. Request a new one."),
    "reset_too_soon": N_("A code was sent a moment ago. Please wait before requesting another."),
    "reset_codes_used_up_today": N_("This number has had all its verification codes for today. Please try again later."),
    "sms_unavailable": N_("The text message could not be sent just now. Please try again in a moment."),
    "sms_hourly_limit_reached": N_("No more verification codes can be sent by text message this hour. "
                                   "Please try again after the hour."),
    "permission_denied": N_("You are not allowed to do this."),
    "unauthenticated": N_("Please sign in again."),
    "not_found": N_("We could not find that."),
    "slot_not_found": N_("We could not find that time slot."),
    "booking_not_found": N_("We could not find that booking."),
    "session_not_found": N_("We could not find that session."),
    "resource_exhausted": N_("The service is very busy right now. Please try again in a moment."),
    "holds_busy": N_("Many patients are booking right now. Please try again in a few seconds; a time you held "
                     "before stays in your bookings."),
    # Ticketing (O&M work orders) and the staff list.
    "invalid_transition": N_("This step is not possible in the ticket's current state. The page now shows where "
                             "it stands."),
    "worklog_required": N_("Log the work done on this ticket before resolving it."),
    "worklog_overlaps": N_("You have already logged time that overlaps this period. "
                           "Check the start time and the minutes."),
    "engineer_not_graded": N_("Your account has no grade yet, so your time cannot be logged. "
                              "An admin must set your grade; then sign out and sign in again."),
    "worklog_in_future": N_("Only time already worked can be logged: the work must end by now. "
                            "Check the start time and the minutes."),
    "worklog_before_ticket_opened": N_("Time can only be logged from when the ticket was reported: the work "
                                       "cannot start earlier. Check the start time."),
    "not_requester": N_("Only the person who reported the problem can confirm or reopen its resolution."),
    "not_assignee": N_("Only the engineer the ticket is assigned to can do this."),
    "role_not_allowed": N_("Your role does not allow this step on a ticket."),
    "self_confirmation": N_("You worked on this ticket, so its resolution bills your time: someone else must "
                            "confirm it. A dispatcher or an administrator can close it."),
    "assignee_not_an_engineer": N_("A ticket can only be assigned to an O&M engineer. Please choose an engineer "
                                   "from the list."),
    "staff_directory_unavailable": N_("We cannot check the engineer right now, so the ticket is not assigned. "
                                      "Please try again in a moment."),
    "not_your_ticket": N_("This ticket is not yours: only its reporter and the O&M team (engineers, dispatchers, "
                          "administrators) can see it."),
    "ticket_closed": N_("This ticket is closed and takes no more changes."),
    "ticket_not_found": N_("We could not find that ticket."),
    "subsystem_not_found": N_("We could not find that system. Please choose one from the list."),
    "subsystem_code_taken": N_("Another system already has this code."),
    "unknown_role": N_("There is no such role."),
    "role_not_staff": N_("Only hospital staff and O&M roles can be listed."),
    "unavailable": N_("The service is unavailable right now. Please try again in a moment."),
}
# The office's check-in, no-show and cancel buttons show only for a booking
# they fit: refused, the booking has moved on since the page was loaded (a
# colleague's page, or the patient's), and the patient's wording of these
# codes (booking_not_confirmed speaks of the slip) would mislead the clerk.
# A worklog is refused not_assignee when the engineer was never on the ticket:
# one taken off it still logs the time already worked there.
WORKLOG_REASONS = {
    "not_assignee": N_("Only an engineer who is or was assigned to this ticket can log time on it."),
}
OFFICE_BOOKING_REASONS = {
    reason: N_("This booking was already checked in, marked as a no-show or cancelled: reload the page.")
    for reason in ("booking_not_confirmed", "booking_not_cancellable")
}
GENERAL_REFUSAL = N_("Sorry, that did not work. Please try again.")
# The fields a service may name in a refusal, as the forms call them.
FIELDS = {
    "subsystem_code": N_("System"), "kind": N_("Type of request"), "title": N_("Title"),
    "description": N_("Description"), "impact": N_("Impact"), "urgency": N_("Urgency"),
    "assignee_id": N_("Engineer"), "pause_side": N_("Waiting for whom"), "note": N_("Note"),
    "body": N_("Comment"), "grade": N_("Grade"), "activity": N_("Activity"), "started_at": N_("Started at"),
    "minutes": N_("Minutes"), "ticket_id": N_("Ticket"), "days_ahead": N_("Days ahead"),
    "reason": N_("Reason (shown to the patients)"),
    # Identity's, as the sign-in, sign-up and reset forms label them: a refusal whose reason has no
    # sentence of its own (a login too long or holding a control character) names the field so, not
    # by its identifier, which a patient cannot read.
    "login": N_("Mobile number (staff: staff ID)"), "phone": N_("Mobile number"),
    "code": N_("Verification code (6 digits)"), "display_name": N_("Your name (as on your ID card)"),
    "password": N_("Password"), "new_password": N_("New password (at least 8 characters, letters and digits)"),
    # Registration's session template, as the office's template form labels its fields.
    "template.template_id": N_("Session template"), "template.doctor_id": N_("Doctor"),
    "template.weekday": N_("Weekday"), "template.period": N_("Period"), "template.start_time": N_("Starts"),
    "template.end_time": N_("Ends"), "template.slot_minutes": N_("Slot length (minutes)"),
    "template.capacity_per_slot": N_("Patients per slot"),
}

PERIODS = {1: N_("Morning"), 2: N_("Afternoon"), 3: N_("Evening")}
TITLES = {1: N_("Resident"), 2: N_("Attending physician"), 3: N_("Associate chief physician"),
          4: N_("Chief physician")}
BOOKING_STATUSES = {1: N_("Held, awaiting payment"), 2: N_("Confirmed"), 3: N_("Cancelled"), 4: N_("Expired"),
                    5: N_("Checked in"), 6: N_("No-show")}
# Why a booking ended (registration's cancel_reason codes).
END_REASONS = {
    "patient": N_("You cancelled this booking."),
    "registration_office": N_("The registration office cancelled this booking."),
    "session_suspended": N_("The doctor's clinic for this session has been suspended."),
    "expired": N_("The hold expired before payment."),
    "payment_failed": N_("The payment did not go through, so the hold was released."),
}
# A booking ended by a failed payment: not "expired", the patient did not let it lapse.
PAYMENT_NOT_COMPLETED = N_("Payment not completed")
# Why a payment failed (billing's failure_reason, the provider's decline reason), as the patient is told.
PAYMENT_FAILURES = {
    "card_declined": N_("The payment did not go through: the bank declined it."),
    "declined": N_("The payment did not go through: the bank declined it."),
    "insufficient_funds": N_("The payment did not go through: the card's balance is not enough."),
}
PAYMENT_FAILED = N_("The payment did not go through.")
PAYMENT_FAILED_NEXT = N_("The time you held has been released. Please book again; you may pay with another card.")
SESSION_STATUSES = {1: N_("Open"), 2: N_("Suspended")}
WEEKDAYS = {1: N_("Monday"), 2: N_("Tuesday"), 3: N_("Wednesday"), 4: N_("Thursday"), 5: N_("Friday"),
            6: N_("Saturday"), 7: N_("Sunday")}

# O&M tickets (ticketing's enums by number, worklog grades and activities by name).
TICKET_STATUSES = {1: N_("New, awaiting dispatch"), 2: N_("Assigned"), 3: N_("In progress"), 4: N_("On hold"),
                   5: N_("Resolved, awaiting confirmation"), 6: N_("Closed")}
PRIORITIES = {1: N_("P1 critical"), 2: N_("P2 high"), 3: N_("P3 medium"), 4: N_("P4 low")}
TICKET_KINDS = {1: N_("Incident"), 2: N_("Service request"), 3: N_("Change")}
TICKET_KIND_HELP = {
    1: N_("Something that worked has stopped working or is going wrong, e.g. images will not open."),
    2: N_("You need something provided or set up, e.g. an account, access rights or a printer."),
    3: N_("A planned change to a system, e.g. an upgrade, a new interface or new settings."),
}
LEVELS = {1: N_("High"), 2: N_("Medium"), 3: N_("Low")}
IMPACT_HELP = {
    1: N_("A whole department, many patients or patient safety is affected."),
    2: N_("A few colleagues or one clinic or ward are affected."),
    3: N_("Only you are affected, or there is an easy way around it."),
}
URGENCY_HELP = {
    1: N_("Work has stopped: it needs fixing now."),
    2: N_("Work is slowed down: it should be fixed today."),
    3: N_("It can wait a few days."),
}
# The ticket history's events, as the timeline tells them (paused and priority_changed carry details).
HISTORY_EVENTS = {
    "opened": N_("Reported the problem."),
    "assigned": N_("Assigned the ticket."),
    "started": N_("Started work."),
    "resumed": N_("Resumed work."),
    "resolved": N_("Resolved."),
    "reopened": N_("Reopened."),
    "closed": N_("Closed the ticket."),
}
GENERAL_EVENT = N_("Updated the ticket.")
PAUSED_BY = {
    "hospital": N_("Paused: waiting for the hospital (the SLA clock stops)."),
    "contractor": N_("Paused by the O&M team (the SLA clock keeps running)."),
    "vendor": N_("Paused: waiting for the vendor (the SLA clock stops)."),
}
PAUSE_SIDES = {1: N_("The hospital"), 2: N_("The O&M team (our side)"), 3: N_("A third-party vendor")}
PAUSE_SIDE_HELP = {
    1: N_("Waiting for the hospital, e.g. for a ward to free the computer or for an approval: the SLA clock "
          "stops."),
    2: N_("Our own wait, e.g. for a spare part or a colleague: the SLA clock keeps running."),
    3: N_("Waiting for the vendor's fix or visit: the SLA clock stops."),
}
# Why the SLA clock is stopped (the side of the pause).
CLOCK_STOPPED = {1: N_("Clock stopped: waiting for the hospital"), 3: N_("Clock stopped: waiting for the vendor")}
TICKET_SOURCES = {1: N_("Reported online"), 2: N_("Reported to the service desk"), 3: N_("Monitoring alert"),
                  4: N_("Device alarm")}
WORKLOG_GRADES = {"junior": N_("Junior engineer"), "intermediate": N_("Intermediate engineer"),
                  "senior": N_("Senior engineer"), "expert": N_("Expert")}
WORKLOG_ACTIVITIES = {"diagnosis": N_("Diagnosis"), "repair": N_("Repair"), "onsite": N_("On-site service"),
                      "remote": N_("Remote support"), "change": N_("Change work"), "travel": N_("Travel"),
                      "documentation": N_("Documentation")}
SUBSYSTEM_CATEGORIES = {"clinical": N_("Clinical systems"), "medical-technology": N_("Medical technology"),
                        "patient-service": N_("Patient services"), "management": N_("Hospital management"),
                        "research": N_("Research"), "infrastructure": N_("Infrastructure")}
TEAMS = {"apps-clinical": N_("Clinical applications"),
         "apps-business": N_("Management and patient-service applications"), "imaging": N_("Medical imaging"),
         "lab-pathology": N_("Laboratory and pathology"), "integration": N_("Integration and data"),
         "network-security": N_("Network and information security"), "dc-db": N_("Data centre and databases"),
         "desktop": N_("Desktop and terminals")}


@functools.cache
def translations(language: str) -> Translations:
    """The compiled catalogue of a language (compiled once, in memory)."""
    po = resources.files(__package__).joinpath(f"locale/{language}/LC_MESSAGES/messages.po")
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


def choose_language(requested: str | None, remembered: str | None, accept_language: str | None) -> str:
    """An explicit choice, then the remembered one, then the browser's; Chinese otherwise."""
    for candidate in (requested, remembered):
        if candidate in LANGUAGES:
            return candidate
    if accept_language:
        preferred = [part.split(";")[0].strip().replace("-", "_") for part in accept_language.split(",")
                     if not _refused(part)]
        # Chinese first: a browser that accepts it at all gets the hospital's own language.
        if any(p.lower().startswith("zh") for p in preferred):
            return DEFAULT_LANGUAGE
        found = negotiate_locale(preferred, list(LANGUAGES), sep="_")
        # Babel answers in the browser's spelling ("EN" for "EN-us"); the catalogue has its own.
        for language in LANGUAGES:
            if found and language.lower() == found.lower():
                return language
    return DEFAULT_LANGUAGE


def _refused(part: str) -> bool:
    """An Accept-Language entry with q=0: the browser says it does not want that language."""
    for param in part.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) <= 0
            except ValueError:
                return False
    return False


class Formatter:
    """Money, dates and times for one language, in the hospital's time zone."""

    def __init__(self, language: str):
        self.language = language
        self.locale = Locale.parse(language)
        self.html_lang = language.replace("_", "-")

    def money(self, fen: int) -> str:
        return format_currency(Decimal(fen).scaleb(-2), "CNY", locale=self.locale)

    def instant(self, rfc3339: str) -> dt.datetime | None:
        return dt.datetime.fromisoformat(rfc3339).astimezone(HOSPITAL_TIME) if rfc3339 else None

    def time(self, rfc3339: str) -> str:
        moment = self.instant(rfc3339)
        return format_time(moment, "HH:mm", locale=self.locale) if moment else "—"

    def moment(self, rfc3339: str) -> str:
        """A date and time, as short as it can be: the time alone today, the year only when it is not this one."""
        moment = self.instant(rfc3339)
        if moment is None:
            return "—"
        today = dt.datetime.now(HOSPITAL_TIME).date()
        if moment.date() == today:
            pattern = "HH:mm"
        elif moment.year == today.year:
            pattern = "MMM d, HH:mm" if self.language == "en" else "M月d日 HH:mm"
        else:
            pattern = "MMM d, y, HH:mm" if self.language == "en" else "y年M月d日 HH:mm"
        return format_datetime(moment, pattern, locale=self.locale)

    def date(self, value: str | dt.date, style: str = "full") -> str:
        if not value:
            return "—"
        day = dt.date.fromisoformat(value) if isinstance(value, str) else value
        return format_date(day, style, locale=self.locale)

    def short_date(self, value: str | dt.date) -> str:
        day = dt.date.fromisoformat(value) if isinstance(value, str) else value
        return format_date(day, "EEE M/d" if self.language == "en" else "M月d日 EEE", locale=self.locale)
