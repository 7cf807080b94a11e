"""The revoked tokens' list as an api keeps it: what it refuses, when it
learns a revocation, and what it does when identity cannot be reached."""
from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from prometheus_client import REGISTRY

from tuoguan_common import auth
from tuoguan_common import revocations as revocations_module
from tuoguan_common.errors import TokenRevoked, Unauthenticated
from tuoguan_common.revocations import RevocationList, Revoked


class Identity:
    """What ListRevokedTokens answers, as the test sets it; ``down`` makes it fail."""

    def __init__(self):
        self.revoked: list[str] = []
        self.withdrawn: dict[str, int] = {}
        self.down = False
        self.asked = 0

    def __call__(self) -> Revoked:
        self.asked += 1
        if self.down:
            raise ConnectionError("identity is restarting")
        return Revoked(frozenset(self.revoked), dict(self.withdrawn))


def jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def test_a_revoked_token_is_refused_on_every_call_even_when_remembered(issuer, token_keys):
    identity = Identity()
    revocations = RevocationList("revocations-test", identity, refresh_seconds=3600)
    verifier = auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations)
    device = issuer.issue("device:alertmanager", [auth.DEVICE], ttl_seconds=86_400)
    other = issuer.issue("device:freezer-b2-07", [auth.DEVICE], ttl_seconds=86_400)
    assert verifier.verify(device).subject == "device:alertmanager"  # now remembered as verified
    identity.revoked = [jti(device)]
    assert revocations.refresh()
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(device)
    assert verifier.verify(other).subject == "device:freezer-b2-07"
    assert REGISTRY.get_sample_value("tuoguan_token_revocations", {"service": "revocations-test"}) == 1


def test_identity_out_of_reach_keeps_the_last_list():
    identity = Identity()
    identity.revoked = ["a" * 32]
    revocations = RevocationList("revocations-down", identity, refresh_seconds=3600)
    assert revocations.refresh()
    read_at = REGISTRY.get_sample_value("tuoguan_token_revocations_refreshed_timestamp_seconds",
                                        {"service": "revocations-down"})
    identity.down = True
    assert not revocations.refresh()
    assert "a" * 32 in revocations, "a revocation stays in force while identity is away"
    assert REGISTRY.get_sample_value("tuoguan_token_revocations_refreshed_timestamp_seconds",
                                     {"service": "revocations-down"}) == read_at


def test_started_it_reads_at_once_then_every_interval():
    identity = Identity()
    identity.revoked = ["b" * 32]
    revocations = RevocationList("revocations-timer", identity, refresh_seconds=0.05).start()
    try:
        assert "b" * 32 in revocations, "read before start() returns"
        identity.revoked = []
        deadline = time.monotonic() + 5
        while "b" * 32 in revocations and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "b" * 32 not in revocations and identity.asked >= 2
    finally:
        revocations.stop()


def test_identity_starting_is_said_once_then_a_warning_past_the_grace(caplog, monkeypatch):
    identity = Identity()
    identity.down = True
    revocations = RevocationList("revocations-starting", identity, refresh_seconds=3600)
    caplog.set_level("INFO", logger="tuoguan_common.revocations")
    for _ in range(3):
        assert not revocations.refresh()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "token revocation list not read yet: waiting for identity")]
    caplog.clear()
    # Past the grace, still never read: every failure is a warning.
    monkeypatch.setattr(revocations, "_created", time.monotonic() - revocations_module.STARTUP_GRACE_SECONDS - 1)
    assert not revocations.refresh()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    caplog.clear()
    # Read once, a later failure warns at once.
    identity.down = False
    fresh = RevocationList("revocations-starting", identity, refresh_seconds=3600)
    assert fresh.refresh()
    identity.down = True
    assert not fresh.refresh()
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_until_a_first_read_it_says_never_and_tries_every_second():
    """Identity still starting beside the api: the figure's age says "never"
    (the stale-list alert fires), and the api does not wait a whole interval to try again."""
    identity = Identity()
    identity.down = True
    revocations = RevocationList("revocations-late", identity, refresh_seconds=3600)
    assert REGISTRY.get_sample_value("tuoguan_token_revocations_refreshed_timestamp_seconds",
                                     {"service": "revocations-late"}) == 0
    revocations.start()
    try:
        identity.revoked, identity.down = ["c" * 32], False
        deadline = time.monotonic() + 5
        while "c" * 32 not in revocations and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "c" * 32 in revocations
        assert REGISTRY.get_sample_value("tuoguan_token_revocations_refreshed_timestamp_seconds",
                                         {"service": "revocations-late"}) > 0
    finally:
        revocations.stop()


def test_a_verified_caller_names_its_token_and_a_revoked_one_still_says_whose_it_was(issuer, token_keys):
    identity = Identity()
    revocations = RevocationList("revocations-principal", identity, refresh_seconds=3600)
    verifier = auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations)
    token = issuer.issue("patient-7", [auth.PATIENT])
    claims = jwt.decode(token, options={"verify_signature": False})
    principal = verifier.verify(token)
    assert (principal.token_id, principal.expires_at) == (claims["jti"], claims["exp"])
    assert principal == auth.Principal("patient-7", frozenset({auth.PATIENT})), "who calls, whatever the token"
    identity.revoked = [claims["jti"]]
    assert revocations.refresh()
    with pytest.raises(TokenRevoked) as refused:
        verifier.verify(token)
    assert refused.value.principal.token_id == claims["jti"] and refused.value.principal.subject == "patient-7"
    # The refusal waits for a method that asks who calls, and keeps its kind.
    reset = auth.set_current_principal(refused.value)
    try:
        with pytest.raises(TokenRevoked) as asked:
            auth.current_principal()
        assert asked.value.principal.subject == "patient-7" and asked.value.code == "UNAUTHENTICATED"
    finally:
        auth.reset_current_principal(reset)


def test_an_accounts_tokens_older_than_its_generation_are_refused_even_when_remembered(issuer, token_keys):
    identity = Identity()
    revocations = RevocationList("revocations-generations", identity, refresh_seconds=3600)
    verifier = auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations)
    before = issuer.issue("engineer-1", [auth.ENGINEER], grade="junior")
    other = issuer.issue("engineer-2", [auth.ENGINEER], grade="senior")
    assert verifier.verify(before).generation == 0   # now remembered as verified
    identity.withdrawn = {"engineer-1": 1}
    assert revocations.refresh()
    with pytest.raises(TokenRevoked, match="sign in again") as refused:
        verifier.verify(before)
    assert refused.value.principal.grade == "junior"
    after = issuer.issue("engineer-1", [auth.ENGINEER], grade="senior", generation=1)
    assert (verifier.verify(after).grade, verifier.verify(after).generation) == ("senior", 1)
    assert verifier.verify(other).subject == "engineer-2", "other accounts keep their tokens"
    assert REGISTRY.get_sample_value("tuoguan_token_withdrawn_accounts", {"service": "revocations-generations"}) == 1
    # A verifier without a list (tests, the check switched off) refuses no generation.
    assert auth.TokenVerifier(Path(token_keys["public"]).read_bytes()).verify(before).subject == "engineer-1"


@pytest.mark.parametrize("generation", ["1", -1, True, 1.5])
def test_a_token_whose_generation_is_not_a_count_is_not_valid(token_keys, generation):
    """Identity signs only counts; anything else is a token no api accepts."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(token_keys["private"]).read_bytes(), password=None)
    token = jwt.encode({"iss": auth.ISSUER, "aud": auth.AUDIENCE, "sub": "engineer-1", "roles": [auth.ENGINEER],
                        "exp": int(time.time()) + 60, "jti": "x" * 32, "gen": generation}, key, algorithm=auth.ALGORITHM)
    with pytest.raises(Unauthenticated, match="not valid"):
        auth.TokenVerifier(Path(token_keys["public"]).read_bytes()).verify(token)


def test_a_list_past_grpcs_default_4_mb_is_still_read():
    """150,000 sign-outs within a token's lifetime: about 5 MB of ids."""
    from concurrent import futures

    import grpc
    from tuoguan.identity.v1 import identity_pb2, identity_pb2_grpc

    ids = [f"{i:032x}" for i in range(150_000)]

    class Identity(identity_pb2_grpc.IdentityServiceServicer):
        def ListRevokedTokens(self, request, context):
            return identity_pb2.ListRevokedTokensResponse(token_ids=ids, withdrawn_accounts=[
                identity_pb2.WithdrawnAccount(account_id="engineer-3", token_generation=3)])

    server = grpc.server(futures.ThreadPoolExecutor(2), options=[("grpc.max_send_message_length", -1)])
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(Identity(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert identity_pb2.ListRevokedTokensResponse(token_ids=ids).ByteSize() > 4 * 1024 * 1024
        revocations = revocations_module.from_identity("revocations-large", f"127.0.0.1:{port}", refresh_seconds=3600)
        assert revocations.refresh()
        assert ids[-1] in revocations
        assert (revocations.generation_required("engineer-3"), revocations.generation_required("other")) == (3, 0)
    finally:
        server.stop(0)
