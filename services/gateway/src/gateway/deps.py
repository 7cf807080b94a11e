"""What route handlers receive: the services as the caller sees them, the rate
grade the caller's token carries, and the Idempotency-Key header of a write."""
from __future__ import annotations

import re
from typing import Annotated

import jwt
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .clients import Clients, Services
from .errors import ApiError

# auto_error=False: the gateway does not decide who may call what; a missing
# token reaches the service, which answers UNAUTHENTICATED where it matters.
bearer = HTTPBearer(auto_error=False, description="The access_token from POST /api/v1/auth/signin")
# RFC 6750's token68: every token the platform issues is one. Anything else (a tab, a
# non-ASCII byte) could not travel as gRPC metadata; no service could accept it anyway.
TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
# Far above any token identity issues (well under 1 KB). A longer one is no token
# of the platform's, and past gRPC's 16 KiB metadata limit the service would not
# even see it: the call would fail RESOURCE_EXHAUSTED, a 429 "try again" to a
# request no retry mends.
MAX_TOKEN_CHARS = 4096


def caller_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str | None:
    """The caller's bearer token as it is sent on to the services; None without one."""
    if credentials and (len(credentials.credentials) > MAX_TOKEN_CHARS
                        or not TOKEN68.fullmatch(credentials.credentials)):
        # What a service answers for a token it cannot verify.
        raise ApiError(401, "unauthenticated", "the access token is not valid")
    return credentials.credentials if credentials else None


def token_grade(token: str | None) -> str:
    """The rate grade claim of a token, as identity signed it at sign-in (an engineer's, once an admin
    graded them); "" for none, or for anything that is not a token with a grade. Read, NOT verified: only
    to pass it on to ticketing or show it, never to decide anything here. Ticketing verifies the token and
    records a worklog at the grade in it, whatever grade a request names. The portal and the API both
    read it here, so the two cannot come to read it differently."""
    grade = _unverified_claims(token).get("grade")
    return grade if isinstance(grade, str) else ""


def token_subject(token: str | None) -> str:
    """The account a token names (its "sub"), "" for none. Read, NOT verified, like token_grade: it
    only says whose place in the waiting room a request asks about (booking_queue.py). A forged
    subject gains nothing there: the hold it would admit is refused by registration, which verifies
    the token, and a place is only freed or cut short after a service accepted the token."""
    subject = _unverified_claims(token).get("sub")
    return subject if isinstance(subject, str) else ""


def _unverified_claims(token: str | None) -> dict:
    """A token's claims, read without checking its signature ({} for none, or for what is no token): what
    token_grade and token_subject may say of it, and nothing more."""
    if not token:
        return {}
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def caller_grade(token: Annotated[str | None, Depends(caller_token)]) -> str:
    return token_grade(token)


CallerToken = Annotated[str | None, Depends(caller_token)]


def caller_services(request: Request, token: Annotated[str | None, Depends(caller_token)]) -> Services:
    clients: Clients = request.app.state.clients
    return clients.for_caller(token)


CallerServices = Annotated[Services, Depends(caller_services)]
# The grade claim of the caller's token (token_grade): unverified, to pass on, not to decide with.
CallerGrade = Annotated[str, Depends(caller_grade)]
IdempotencyKey = Annotated[str, Header(
    alias="Idempotency-Key", min_length=1, max_length=128,
    description="A fresh random value per intended write; resending it returns the first answer",
)]
