"""Registration's errors: each is one of tuoguan_common's, so the interceptor
maps it to its gRPC status and sends the reason code as trailing metadata."""
from __future__ import annotations

from tuoguan_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

from .domain.model import Refusal

__all__ = ["BookingRefused", "HoldsBusy", "InvalidArgument", "NotFound", "TemplateExists", "TemplateOverlaps",
           "not_found"]


class BookingRefused(FailedPrecondition):
    """A booking rule said no; the reason is the rule's stable code."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message, reason=refusal.reason)


class HoldsBusy(ResourceExhausted):
    """Turned away before the request is looked at: holds are waiting past
    their latency target (see tuoguan_common.admission). This request wrote
    nothing; sent again, it is decided (or, if an earlier try held a place,
    answered) as usual."""

    def __init__(self):
        super().__init__("too many patients are booking right now: try again in a few seconds "
                         "(a place held by an earlier try stays held)", reason="holds_busy")


class TemplateExists(AlreadyExists):
    """The doctor already has a template for the weekday and period: a new one
    would overwrite it unseen (its hours, its sizes), so that one is edited by
    its id instead."""

    def __init__(self, existing_id: str | None = None):
        message = ("the doctor already has a template for this weekday and period "
                   "(template.doctor_id, template.weekday, template.period)")
        if existing_id:
            message += f": edit that one, template_id {existing_id}"
        super().__init__(message, reason="template_exists")


class TemplateOverlaps(InvalidArgument):
    """The template's hours run into another active template of the doctor
    that weekday. An invalid argument, so the office's form is told which
    time to change (the field), with a reason of its own to say why."""

    reason = "template_overlaps"


def not_found(what: str) -> NotFound:
    return NotFound(f"no such {what}", reason=f"{what}_not_found")
