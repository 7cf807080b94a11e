"""Short-lived signed access tokens and the caller's identity.

Identity signs tokens with an Ed25519 private key; every other service holds
only the public key, so a compromised service cannot mint tokens. The token
travels in gRPC metadata as ``authorization: Bearer <token>``.
"""
from __future__ import annotations

import contextvars
import os
import time
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import PermissionDenied, TokenRevoked, Unauthenticated

ISSUER = "tuoguan-identity"
AUDIENCE = "tuoguan"
ALGORITHM = "EdDSA"
DEFAULT_TTL_SECONDS = 15 * 60

from .roles import (  # noqa: F401 - the roles are part of this module's API
    ADMIN, CLINICIAN, CONSULTANT, DEVICE, DISPATCHER, ENGINEER, FINANCE, PATIENT, REGISTRATION_OFFICE, ROLES, SERVICE,
)


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    # The token the caller presented (its id, its expiry in epoch seconds):
    # what signing out revokes. Not part of who the caller is.
    token_id: str = field(default="", compare=False)
    expires_at: int = field(default=0, compare=False)
    # An engineer's rate grade as identity held it at sign-in ("" for anyone
    # else, and for an engineer not graded yet): what prices their worklogs.
    grade: str = ""
    # The account's token generation at sign-in (claim "gen", 0 when absent):
    # identity moves it on when what a token says of the account goes stale
    # (a new grade, a password reset), and the older tokens are refused.
    generation: int = field(default=0, compare=False)

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require(self, *roles: str) -> "Principal":
        if not self.has(*roles):
            raise PermissionDenied(f"requires one of the roles: {', '.join(sorted(roles))}")
        return self

    def require_owner_or(self, owner_id: str, *roles: str) -> "Principal":
        """The caller owns the record, or holds one of the roles."""
        if self.subject != owner_id and not self.has(*roles):
            raise PermissionDenied("not yours")
        return self


# The caller: a Principal, None (no token), or the refusal of the token it
# presented, kept until a method asks who calls (see current_principal).
_current: contextvars.ContextVar[Principal | Unauthenticated | None] = contextvars.ContextVar(
    "tuoguan_principal", default=None)


def current_principal() -> Principal:
    principal = _current.get()
    if isinstance(principal, TokenRevoked):
        raise TokenRevoked(principal.message, principal.principal)
    if isinstance(principal, Unauthenticated):
        raise Unauthenticated(principal.message)
    if principal is None:
        raise Unauthenticated("sign in first: no valid access token")
    return principal


def set_current_principal(principal: Principal | Unauthenticated | None) -> contextvars.Token:
    """The caller for this context; an ``Unauthenticated`` when its token was
    refused, so only a method that needs a caller refuses the call."""
    return _current.set(principal)


def reset_current_principal(token: contextvars.Token) -> None:
    _current.reset(token)


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Writes a fresh Ed25519 key pair (development and tests)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = directory / "token-signing.pem"
    public = directory / "token-verify.pem"
    # Created owner-only: never readable by others, not even between a write and a chmod.
    private.unlink(missing_ok=True)
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


class TokenIssuer:
    def __init__(self, private_key_pem: bytes, ttl_seconds: int = DEFAULT_TTL_SECONDS):
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_file(cls, path: str | None, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> "TokenIssuer":
        if not path:
            raise SystemExit("TUOGUAN_TOKEN_PRIVATE_KEY_FILE is not set: identity cannot sign tokens")
        return cls(Path(path).read_bytes(), ttl_seconds)

    def issue(self, subject: str, roles: list[str] | frozenset[str], ttl_seconds: int | None = None, *,
              token_id: str | None = None, issued_at: int | None = None, expires_at: int | None = None,
              grade: str = "", generation: int = 0) -> str:
        """A signed token; ``ttl_seconds`` overrides the issuer's lifetime
        (long-lived device tokens). ``token_id``, ``issued_at`` and
        ``expires_at`` (epoch seconds) sign a recorded token again: Ed25519
        signatures are deterministic, so the same claims give the same token.
        ``grade`` is an engineer's rate grade and ``generation`` the account's
        token generation, each carried only when there is one."""
        now = int(time.time()) if issued_at is None else issued_at
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "roles": sorted(roles),
            "iat": now,
            "exp": expires_at if expires_at is not None else now + (self.ttl_seconds if ttl_seconds is None else ttl_seconds),
            "jti": token_id or uuid.uuid4().hex,
        }
        if grade:
            claims["grade"] = grade
        if generation:
            claims["gen"] = generation
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


# Identity and the services run on different nodes: a clock a little behind
# identity's must not refuse a token just issued ("iat" in its future). The
# same leeway lets a token live this much past its "exp", on a 15-minute life.
CLOCK_SKEW_SECONDS = 10


class TokenVerifier:
    """Checks a token's signature, audience, issuer and expiry, and that
    ``revoked`` (a ``revocations.RevocationList``; nothing by default) has
    not withdrawn it: its id is not in it, and its generation is not below the
    one ``revoked.generation_required(subject)`` answers for its account."""

    def __init__(self, public_key_pem: bytes, revoked: Container[str] = frozenset()):
        self._key = serialization.load_pem_public_key(public_key_pem)
        self.revoked = revoked
        self._generation_required = getattr(revoked, "generation_required", lambda subject: 0)
        self._cache: dict[str, Principal] = {}

    @classmethod
    def from_file(cls, path: str | None, revoked: Container[str] = frozenset()) -> "TokenVerifier":
        if not path:
            raise SystemExit("TUOGUAN_TOKEN_PUBLIC_KEY_FILE is not set: the service cannot check tokens")
        return cls(Path(path).read_bytes(), revoked)

    def verify(self, token: str) -> Principal:
        # A patient's token is presented on every call of a booking journey;
        # remembering verified tokens until they expire saves the signature check.
        principal = self._cache.get(token)
        if principal is None or principal.expires_at <= time.time():
            try:
                claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                    leeway=CLOCK_SKEW_SECONDS, options={"require": ["exp", "sub"]})
            except jwt.ExpiredSignatureError as exc:
                raise Unauthenticated("the access token has expired: sign in again") from exc
            except jwt.PyJWTError as exc:
                raise Unauthenticated("the access token is not valid") from exc
            principal = Principal(subject=str(claims["sub"]), roles=frozenset(claims.get("roles", ())),
                                  token_id=str(claims.get("jti", "")), expires_at=int(claims["exp"]),
                                  grade=str(claims.get("grade", "")), generation=_generation(claims))
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[token] = principal
        # Checked on every call, cached or not: a revocation applies at once.
        if principal.token_id in self.revoked:
            raise TokenRevoked("the access token has been revoked", principal)
        if principal.generation < self._generation_required(principal.subject):
            raise TokenRevoked("the account changed since this token was issued: sign in again", principal)
        return principal


def _generation(claims: dict) -> int:
    generation = claims.get("gen", 0)
    # Signed by identity, so never anything else; a bool is an int to Python.
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise Unauthenticated("the access token is not valid")
    return generation


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
