"""Every error leaves the gateway in one shape:
``{"error": {"reason": ..., "field": ..., "message": ...}}``.

gRPC statuses are mapped here once; ``reason`` and ``field`` come from the
trailing metadata the services' interceptor sets, so clients can show a
message in the patient's language.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import grpc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY, RETRY_AFTER_KEY

from .grpc_trailers import first_value

log = logging.getLogger(__name__)

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}
# INTERNAL, UNKNOWN, DATA_LOSS, CANCELLED: a service failed; say so without its details.
UPSTREAM_FAILED = 502


class ApiError(Exception):
    """A refusal decided in the gateway itself (e.g. a slip for an unpaid booking)."""

    def __init__(self, status: int, reason: str, message: str, field: str | None = None, *,
                 retry_after: int | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.reason, self.message, self.field = status, reason, message, field
        self.retry_after = retry_after
        # Members of the reply beside "error", for a refusal that says more (the waiting room's place).
        self.extra = extra or {}


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, UPSTREAM_FAILED)


# A service shedding load (RESOURCE_EXHAUSTED) or briefly unavailable: well-behaved
# clients, the portal included, wait this long before trying again.
RETRY_AFTER_SECONDS = "2"


def error_response(status: int, reason: str, message: str, field: str | None = None, *,
                   retry_after: str | None = None, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status in (429, 503):
        headers = {"Retry-After": retry_after or RETRY_AFTER_SECONDS}
    body = {"error": {"reason": reason, "field": field, "message": message}, **extra}
    return JSONResponse(status_code=status, content=body, headers=headers)


def keep_header(request: Request, name: str, value: str) -> None:
    """A header the request's reply carries whatever it turns out to be: a refusal answered by the
    handlers below too (the waiting room's ticket, which a client admitted at once and then refused
    a full slot needs for its next try, or it queues again behind everyone)."""
    if not hasattr(request.state, "kept_headers"):
        request.state.kept_headers = {}
    request.state.kept_headers[name] = value


def _with_kept_headers(request: Request, response: JSONResponse) -> JSONResponse:
    response.headers.update(getattr(request.state, "kept_headers", {}))
    return response


def retry_after(trailing: Any) -> str | None:
    """The service's wait as a Retry-After value: whole seconds, at least 1; None
    when it named none (or something that is no such number). A refusal that
    ends after a wait the service knows (a locked sign-in, a reset code asked
    for again too soon) names it in RETRY_AFTER_KEY's trailing metadata; that
    wait, not the load-shedding default, is the Retry-After."""
    value = (first_value(trailing, RETRY_AFTER_KEY) or "").strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        return None
    return str(int(value))


async def on_rpc_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
    code = exc.code()
    status = http_status(code)
    trailing = exc.trailing_metadata()
    if status < 500:
        message = exc.details() or code.name.lower()
    else:
        # The details of a failure name internal addresses and errors: logged, not shown.
        log.warning("service call failed", extra={"grpc_code": code.name, "http_status": status})
        message = "the service is unavailable, try again shortly" if status == 503 else "a service failed"
    return _with_kept_headers(request, error_response(
        status, first_value(trailing, REASON_KEY) or code.name.lower(), message, first_value(trailing, FIELD_KEY),
        retry_after=retry_after(trailing),
    ))


async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _with_kept_headers(request, error_response(
        exc.status, exc.reason, exc.message, exc.field, retry_after=str(exc.retry_after) if exc.retry_after else None,
        **exc.extra))


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The submitted values are left out of the reply: they may be a password.
    problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    loc = [str(part) for part in first["loc"]]
    if first.get("type") == "json_invalid":
        # A body that is not JSON at all: its loc is ("body", <byte offset>), and no field is at fault.
        field = "body"
    else:
        field = ".".join(loc[1:]) or (loc[0] if loc else None)
    return error_response(422, "invalid_argument", first["msg"], field, detail=jsonable_encoder(problems))


# What FastAPI raises (400) for a body its JSON reader fails on other than as
# invalid JSON: bytes that are not UTF-8 (nesting too deep is BodyLimit's to refuse, before it).
BODY_NOT_PARSED = "There was an error parsing the body"


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == BODY_NOT_PARSED:
        # The same answer as any other body that is not JSON (on_validation_error's json_invalid).
        return error_response(422, "invalid_argument", "the body is not valid JSON", "body")
    reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, reason, str(exc.detail))


# A page for an HTTP error, for the clients that take one (the portal's); None: the JSON error.
Page = Callable[[Request, int], Response | None]


def install(app: FastAPI, page: Page | None = None) -> None:
    async def on_http_error_or_page(request: Request, exc: StarletteHTTPException) -> Response:
        answer = page(request, exc.status_code) if page else None
        return answer if answer is not None else await on_http_error(request, exc)

    app.add_exception_handler(grpc.aio.AioRpcError, on_rpc_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error_or_page)
