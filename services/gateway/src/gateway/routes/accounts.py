"""Sign-up, sign-in and the caller's account (identity)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tuoguan.identity.v1 import identity_pb2

from ..convert import fill, to_dict
from . import API_PREFIX
from ..deps import CallerServices, IdempotencyKey
from ..models import (
    Account, DeviceToken, DeviceTokenList, DeviceTokenRequest, DeviceTokenRevocation, IssuedDeviceToken, PasswordReset,
    PasswordResetConfirm, PasswordResetConfirmReply, PasswordResetReply, SignIn, SignInReply, SignUp, SignUpCode,
    SignUpCodeReply, StaffAccount, StaffGrade, StaffList,
)
from ..sign_in_guard import RESET_MISSES, SIGN_UP_MISSES, client_address

router = APIRouter(prefix=API_PREFIX, tags=["accounts"])


@router.post("/auth/signup/code", status_code=202, response_model=SignUpCodeReply,
             summary="A patient who wants an account asks for a code by text message, to prove the phone is theirs")
async def request_sign_up_code(body: SignUpCode, services: CallerServices, request: Request):
    """The same answer whether or not an account has this number: a number without one is texted a
    sign-up code; a number with one is texted that it has an account, with a code that resets its
    password (POST /api/v1/auth/password-reset/confirm). Codes share each number's limits with
    password-reset codes: one per ``resend_after_seconds`` (429 ``reset_too_soon``), 10 a day (429
    ``reset_codes_used_up_today``), and each client address's (429 ``too_many_codes_from_address``);
    Retry-After says how long to wait. A text the SMS gateway did not take is 503 ``sms_unavailable``:
    ask again after the resend wait (it may yet arrive). Once the platform's texts for the clock hour
    are spent (``IDENTITY_SMS_TEXTS_PER_HOUR``), every number is 503 ``sms_hourly_limit_reached``,
    Retry-After the rest of the hour."""
    reply = await request.app.state.send_guard.attempt(client_address(request), lambda: services.identity.
                                                       RequestSignUpCode(identity_pb2.RequestSignUpCodeRequest(
                                                           phone=body.phone)))
    return to_dict(reply)


@router.post("/auth/signup", status_code=201, response_model=Account, summary="A patient opens an account")
async def sign_up(body: SignUp, key: IdempotencyKey, services: CallerServices, request: Request):
    """With the ``code`` POST /api/v1/auth/signup/code texted to the phone. A wrong code is 422 with
    field ``code`` and reason ``sign_up_code_invalid`` (also after five wrong tries or once used), an
    old one ``sign_up_code_expired``; such answers count against the client's address as failed
    sign-ins do (429 ``too_many_attempts_from_address`` past the limit). The right code of a number
    that has an account is 409 ``phone_taken``: sign in, or reset the password with that code.
    Resent with the same ``Idempotency-Key`` (and password) after it went through, it answers the
    account again and opens no other."""
    reply = await request.app.state.sign_in_guard.attempt(
        client_address(request), lambda: services.identity.SignUpPatient(
            identity_pb2.SignUpPatientRequest(**body.model_dump(), idempotency_key=key)), misses=SIGN_UP_MISSES)
    return to_dict(reply.account)


@router.post("/auth/signin", response_model=SignInReply, summary="Sign in: returns an access token")
async def sign_in(body: SignIn, services: CallerServices, request: Request):
    """Wrong login or password is 401 (``bad_credentials``); after 5 for one login in 5 minutes,
    429 (``too_many_attempts``), except from a device that sends this login's ``device_cookie``, whose
    own wrong passwords count apart: keep the one each sign-in answers. An address with too many failed sign-ins in its window
    (``SIGN_IN_FAILURES_PER_ADDRESS``, 200 in 10 minutes) is refused with 429
    (``too_many_attempts_from_address``) until the window ends; Retry-After says when."""
    return to_dict(await request.app.state.sign_in_guard.attempt(
        client_address(request), lambda: services.identity.SignIn(identity_pb2.SignInRequest(**body.model_dump()))))


@router.post("/auth/signout", status_code=204, response_class=Response,
             summary="Sign out: the access token this request carries stops working")
async def sign_out(services: CallerServices):
    """Every service refuses the token within its revocation refresh interval
    (30 s by default); the account's other tokens keep working. Signing out
    again with the same token is no error. A device token is not signed out
    (403, reason ``not_a_sign_in_token``): an admin revokes it."""
    await services.identity.SignOut(identity_pb2.SignOutRequest())
    return Response(status_code=204)


@router.post("/auth/password-reset", status_code=202, response_model=PasswordResetReply,
             summary="A patient who forgot their password asks for a code by text message")
async def request_password_reset(body: PasswordReset, services: CallerServices, request: Request):
    """The same answer whether or not an account has this number; only an
    account's phone gets a code. A new code replaces the last one, but not
    within ``resend_after_seconds`` of it (429, reason ``reset_too_soon``), and a
    number gets at most 10 codes a day (429, ``reset_codes_used_up_today``); the
    Retry-After header says how long to wait. Each request counts against the
    client's address, whatever the number, but those refused before any text
    (``reset_too_soon``, ``reset_codes_used_up_today``, a field 422): past
    ``SMS_CODES_PER_ADDRESS`` in its window (20 an hour), the address is refused
    with 429 (``too_many_codes_from_address``) until the window ends, Retry-After
    saying when. Once the platform's texts for the clock hour are spent, every
    number is 503 ``sms_hourly_limit_reached`` (not counted against the address),
    Retry-After the rest of the hour."""
    reply = await request.app.state.send_guard.attempt(
        client_address(request), lambda: services.identity.RequestPasswordReset(
            identity_pb2.RequestPasswordResetRequest(phone=body.phone)))
    return to_dict(reply)


@router.post("/auth/password-reset/confirm", response_model=PasswordResetConfirmReply,
             summary="Set a new password with the code sent to the phone: returns a device cookie")
async def reset_password(body: PasswordResetConfirm, key: IdempotencyKey, services: CallerServices,
                         request: Request):
    """Answers a ``device_cookie``, as a sign-in does: the device that proved it holds the phone
    keeps it and sends it with this login's sign-ins (POST /api/v1/auth/signin), so strangers'
    wrong passwords for the login do not lock it out. It replaces the cookies of the old password,
    which the reset voided. A wrong code is 422 with field ``code`` and reason ``reset_code_invalid``
    (also after five wrong tries or once used), an old one ``reset_code_expired``.
    Resent with the same ``Idempotency-Key`` (and password) after it went through, it answers 200
    again, with a device cookie as good as the first, rather than finding its code used. Wrong and
    expired codes count against the client's address as failed sign-ins do (429
    ``too_many_attempts_from_address``)."""
    return to_dict(await request.app.state.sign_in_guard.attempt(
        client_address(request), lambda: services.identity.ResetPassword(
            identity_pb2.ResetPasswordRequest(**body.model_dump(), idempotency_key=key)), misses=RESET_MISSES))


@router.get("/me", response_model=Account, summary="The signed-in account")
async def my_account(services: CallerServices):
    return to_dict((await services.identity.GetMyAccount(identity_pb2.GetMyAccountRequest())).account)


@router.post("/admin/staff-accounts", status_code=201, response_model=Account, summary="Admins open staff accounts")
async def open_staff_account(body: StaffAccount, key: IdempotencyKey, services: CallerServices):
    """An engineer's account may open with its rate ``grade``; any other account's is refused (422, field
    ``grade``)."""
    request = fill(identity_pb2.CreateStaffAccountRequest(idempotency_key=key), body.model_dump(mode="json"))
    return to_dict((await services.identity.CreateStaffAccount(request)).account)


@router.get("/admin/staff-accounts", response_model=StaffList,
            summary="Admins and dispatchers list the staff accounts holding a role (engineers unless named), "
                    "with engineers' grades")
async def staff_accounts(
    services: CallerServices,
    role: Annotated[str, Query(description="A staff role as tokens carry it: engineer, dispatcher, clinician, "
                                           "admin, finance, registration_office, consultant")] = "engineer",
):
    """Ordered by display name, then login. An engineer's ``grade`` is empty until an admin sets it (PUT
    /api/v1/admin/staff-accounts/{account_id}/grade): the engineers to grade. A role the platform does not
    know is 422 (field ``role``, ``unknown_role``), and ``patient`` 422 (``role_not_staff``: patients are
    never listed); anyone but a dispatcher or an admin 403."""
    return to_dict(await services.identity.ListStaff(identity_pb2.ListStaffRequest(role=role)))


@router.put("/admin/staff-accounts/{account_id}/grade", response_model=Account,
            summary="Admins set an engineer's rate grade, which prices their worklogs")
async def set_staff_grade(account_id: str, body: StaffGrade, services: CallerServices):
    """GET /api/v1/admin/staff-accounts lists the engineers, their ids and grades. The engineer's next
    sign-in carries the grade, and ticketing records their worklogs at it; a change signs the engineer out
    (their tokens carry the old grade: every service refuses them within its revocation refresh, 30 s by
    default, with 401). Setting the grade the account already has changes nothing. A grade not one of junior, intermediate, senior, expert is 422 (field ``grade``); an
    account that is not an engineer's 409 (``not_an_engineer``); an unknown account 404; anyone but an admin
    403, and an admin their own grade too (``own_grade``: another admin sets it)."""
    return to_dict((await services.identity.SetStaffGrade(
        identity_pb2.SetStaffGradeRequest(account_id=account_id, grade=body.grade))).account)


@router.post("/admin/device-tokens", status_code=201, response_model=IssuedDeviceToken,
             summary="Admins issue a long-lived token for a machine (Alertmanager, a specimen bank device)")
async def issue_device_token(body: DeviceTokenRequest, key: IdempotencyKey, services: CallerServices):
    """The token's subject is ``device:<device_name>`` and its one role ``device``. Identity
    records its ``token_id`` (to list and revoke it), never the token itself: keep the token as a
    secret of the machine. It works until ``expires_at`` or until revoked. Resent with the same
    ``Idempotency-Key`` (an answer lost), it answers the same token again and issues no other."""
    return to_dict(await services.identity.IssueDeviceToken(
        identity_pb2.IssueDeviceTokenRequest(**body.model_dump(), idempotency_key=key)))


@router.get("/admin/device-tokens", response_model=DeviceTokenList,
            summary="Admins list the device tokens issued, newest first")
async def device_tokens(
    services: CallerServices,
    device_name: Annotated[str, Query(description="Only this device's tokens; empty: every device's")] = "",
    include_expired: Annotated[bool, Query(description="Expired tokens too")] = False,
):
    """Revoked tokens are listed (with ``revoked_at``, ``revoked_by`` and ``revoke_reason``)
    until they expire. Anyone but an admin is refused (403)."""
    return to_dict(await services.identity.ListDeviceTokens(
        identity_pb2.ListDeviceTokensRequest(device_name=device_name, include_expired=include_expired)))


@router.post("/admin/device-tokens/{token_id}/revoke", response_model=DeviceToken,
             summary="Admins revoke a device token (leaked, or its device retired)")
async def revoke_device_token(token_id: str, body: DeviceTokenRevocation, services: CallerServices):
    """Every api refuses the token (401) within its refresh interval
    (``TUOGUAN_REVOCATION_REFRESH_SECONDS``, 30 by default).
    Revoking it again changes nothing and answers the first revocation. A ``token_id`` that
    is not 32 hexadecimal digits, or a missing or too long ``reason`` (over 500
    characters), is 422 with that field; an id never issued 404; anyone but an admin 403."""
    return to_dict((await services.identity.RevokeDeviceToken(
        identity_pb2.RevokeDeviceTokenRequest(token_id=token_id, reason=body.reason))).token)
