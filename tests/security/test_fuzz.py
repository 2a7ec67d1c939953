"""Schemathesis against the API's own OpenAPI document, on a real server: generated requests
for every operation, anonymous, as an admin and with the API token; no answer may be a server error (5xx) or
differ from the schema the API declares. The example count is bounded to keep this a few
minutes at most (``VOICEBOT_FUZZ_EXAMPLES``, default 25 per operation and caller)."""

from __future__ import annotations

import os
from contextlib import closing
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.security.conftest import TOKEN, Server, Start, seed

EXAMPLES = int(os.environ.get("VOICEBOT_FUZZ_EXAMPLES", "25"))
# What would end the admin's own session mid-run (and so test the rest anonymously).
_ADMIN_SKIPS = {("POST", "/api/auth/logout")}


def fuzz(server: Server, headers: dict[str, str], admin_id: int | None) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    cases = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        if admin_id is not None and (operation.method.upper(), operation.path) in _ADMIN_SKIPS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            nonlocal cases
            params = case.path_parameters or {}
            if admin_id is not None and str(params.get("agent_id")) == str(admin_id):
                return  # the admin disabling or re-passwording themselves ends the run's session
            cases += 1
            response = case.call(base_url=server.url, headers=headers, timeout=60)
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            except (AssertionError, FailureGroup) as exc:  # collected: all are reported
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{str(exc)[:400]}"
                )

        check()
    return cases, failures


@pytest.mark.parametrize("who", ["anonymous", "admin", "token"])
def test_fuzz_the_openapi(serve: Start, who: str) -> None:
    server = serve()
    seed(server)
    headers: dict[str, str] = {}
    admin_id = None
    if who == "token":
        headers["Authorization"] = f"Bearer {TOKEN}"  # the knowledge writes take only this
    if who == "admin":
        with closing(server.signed_in("admin")) as admin:
            headers["Cookie"] = f"voicebot_session={admin.cookies['voicebot_session']}"
            admin_id = admin.get("/api/auth/me").json()["id"]
    cases, failures = fuzz(server, headers, admin_id)
    server_errors = sum(" -> 5" in f for f in failures)
    print(f"fuzz as {who}: {cases} cases, {server_errors} server errors, {len(failures)} failures")
    assert cases >= 10 * EXAMPLES
    assert not failures, "\n".join(failures[:40])
