"""Sign-up, sign-in and the caller's account (identity)."""
from __future__ import annotations

from fastapi import APIRouter

from tuoguan.identity.v1 import identity_pb2

from ..convert import fill, to_dict
from . import API_PREFIX
from ..deps import CallerServices, IdempotencyKey
from ..models import Account, SignIn, SignInReply, SignUp, StaffAccount

router = APIRouter(prefix=API_PREFIX, tags=["accounts"])


@router.post("/auth/signup", status_code=201, response_model=Account, summary="A patient opens an account")
async def sign_up(body: SignUp, key: IdempotencyKey, services: CallerServices):
    reply = await services.identity.SignUpPatient(
        identity_pb2.SignUpPatientRequest(**body.model_dump(), idempotency_key=key))
    return to_dict(reply.account)


@router.post("/auth/signin", response_model=SignInReply, summary="Sign in: returns an access token")
async def sign_in(body: SignIn, services: CallerServices):
    return to_dict(await services.identity.SignIn(identity_pb2.SignInRequest(**body.model_dump())))


@router.get("/me", response_model=Account, summary="The signed-in account")
async def my_account(services: CallerServices):
    return to_dict((await services.identity.GetMyAccount(identity_pb2.GetMyAccountRequest())).account)


@router.post("/admin/staff-accounts", status_code=201, response_model=Account, summary="Admins open staff accounts")
async def open_staff_account(body: StaffAccount, key: IdempotencyKey, services: CallerServices):
    request = fill(identity_pb2.CreateStaffAccountRequest(idempotency_key=key), body.model_dump(mode="json"))
    return to_dict((await services.identity.CreateStaffAccount(request)).account)
