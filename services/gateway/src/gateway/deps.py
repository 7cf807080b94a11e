"""What route handlers receive: the services as the caller sees them, and the
Idempotency-Key header of a write."""
from __future__ import annotations

import re
from typing import Annotated

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


def caller_services(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Services:
    clients: Clients = request.app.state.clients
    if credentials and not TOKEN68.fullmatch(credentials.credentials):
        # What a service answers for a token it cannot verify.
        raise ApiError(401, "unauthenticated", "the access token is not valid")
    return clients.for_caller(credentials.credentials if credentials else None)


CallerServices = Annotated[Services, Depends(caller_services)]
IdempotencyKey = Annotated[str, Header(
    alias="Idempotency-Key", min_length=1, max_length=128,
    description="A fresh random value per intended write; resending it returns the first answer",
)]
