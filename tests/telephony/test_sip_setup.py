"""``voicebot livekit setup-sip``, through the real livekit-api client, against a fake LiveKit."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from livekit import api
from livekit.protocol import egress as proto_egress
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.room import RoomConfiguration
from typer.testing import CliRunner

from tests.fakes.livekit_server import FakeLiveKit
from voicebot.cli.livekit import livekit_app
from voicebot.telephony.sip_setup import (
    SetupPlan,
    SipSetupError,
    check_livekit_url,
    livekit_error_message,
    normalize_addresses,
    normalize_number,
    setup_sip,
)

KEY = "devkey"
SECRET = "voicebot-test-secret-0123456789abcdef"
WRONG_SECRET = "not-the-secret-0123456789abcdef-xyz"
NUMBER = "+442079460000"
CARRIER = ["203.0.113.0/24", "198.51.100.7"]


@pytest.fixture
def lk() -> Iterator[FakeLiveKit]:
    with FakeLiveKit(api_key=KEY, api_secret=SECRET) as fake:
        yield fake
        assert fake.server_errors == []


async def run_setup(url: str, *, secret: str = SECRET, **kwargs: Any) -> SetupPlan:
    kwargs.setdefault("number", NUMBER)
    kwargs.setdefault("allowed_addresses", CARRIER)
    async with api.LiveKitAPI(url, KEY, secret) as client:
        return await setup_sip(client, **kwargs)


def written(lk: FakeLiveKit) -> list[str]:
    return [r.method for r in lk.writes()]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- setup_sip --------------------------------------------------------------------------------


async def test_first_run_creates_the_trunk_and_a_rule_dispatching_the_agent(
    lk: FakeLiveKit,
) -> None:
    plan = await run_setup(lk.url)

    assert written(lk) == ["CreateSIPInboundTrunk", "CreateSIPDispatchRule"]
    [create_trunk] = lk.calls("CreateSIPInboundTrunk", proto_sip.CreateSIPInboundTrunkRequest)
    assert create_trunk.trunk.name == "voicebot"
    assert list(create_trunk.trunk.numbers) == [NUMBER]
    assert list(create_trunk.trunk.allowed_addresses) == CARRIER
    assert create_trunk.trunk.sip_trunk_id == ""

    [create_rule] = lk.calls("CreateSIPDispatchRule", proto_sip.CreateSIPDispatchRuleRequest)
    assert create_rule.rule.WhichOneof("rule") == "dispatch_rule_individual"
    assert create_rule.rule.dispatch_rule_individual.room_prefix == "call-"
    assert create_rule.rule.dispatch_rule_individual.pin == ""
    assert [a.agent_name for a in create_rule.room_config.agents] == ["voicebot"]
    assert list(create_rule.trunk_ids) == [plan.trunk_id]
    assert create_rule.name == "voicebot"

    assert plan.trunk_id is not None and plan.trunk_id.startswith("ST_")
    assert plan.dispatch_rule_id is not None and plan.dispatch_rule_id.startswith("SDR_")
    assert [t.sip_trunk_id for t in lk.inbound_trunks] == [plan.trunk_id]
    [rule] = lk.dispatch_rules
    assert rule.sip_dispatch_rule_id == plan.dispatch_rule_id
    assert rule.room_config.agents[0].agent_name == "voicebot"
    assert plan.lines() == [
        'create trunk "voicebot": number +442079460000; '
        "allowed addresses 203.0.113.0/24, 198.51.100.7",
        'create dispatch rule "voicebot": a room per call (individual rooms "call-..."); '
        f'agent "voicebot"; trunk {plan.trunk_id}',
    ]
    assert plan.warnings == []
    # The client asked with SIP admin grants, and the fake checked them.
    assert all(r.claims and r.claims["sip"]["admin"] for r in lk.requests)


async def test_second_run_changes_nothing(lk: FakeLiveKit) -> None:
    first = await run_setup(lk.url)
    lk.clear_requests()

    second = await run_setup(lk.url)

    assert written(lk) == []
    assert [r.method for r in lk.requests] == ["ListSIPInboundTrunk", "ListSIPDispatchRule"]
    assert second.changes == []
    assert second.lines() == [
        f'unchanged trunk {first.trunk_id} "voicebot"',
        f'unchanged dispatch rule {first.dispatch_rule_id} "voicebot"',
    ]
    assert (second.trunk_id, second.dispatch_rule_id) == (first.trunk_id, first.dispatch_rule_id)


async def test_changed_addresses_update_the_trunk_once(lk: FakeLiveKit) -> None:
    first = await run_setup(lk.url)
    lk.clear_requests()

    plan = await run_setup(lk.url, allowed_addresses=["192.0.2.0/28"])

    assert written(lk) == ["UpdateSIPInboundTrunk"]
    [update] = lk.calls("UpdateSIPInboundTrunk", proto_sip.UpdateSIPInboundTrunkRequest)
    assert update.sip_trunk_id == first.trunk_id
    assert update.WhichOneof("action") == "update"
    assert list(update.update.allowed_addresses.set) == ["192.0.2.0/28"]
    assert not update.update.HasField("numbers")  # only what differs is sent
    assert plan.lines()[0] == (
        f'update trunk {first.trunk_id} "voicebot": '
        "allowed addresses 203.0.113.0/24, 198.51.100.7 -> 192.0.2.0/28"
    )
    assert list(lk.inbound_trunks[0].allowed_addresses) == ["192.0.2.0/28"]


async def test_address_order_and_spelling_do_not_count_as_changes(lk: FakeLiveKit) -> None:
    await run_setup(lk.url, allowed_addresses=["2001:db8::1", "203.0.113.0/24"])
    lk.clear_requests()

    await run_setup(lk.url, allowed_addresses=["203.0.113.0/24", "[2001:0db8:0:0::1]"])

    assert written(lk) == []


async def test_emptying_the_addresses_replaces_the_trunk(lk: FakeLiveKit) -> None:
    first = await run_setup(lk.url)
    lk.clear_requests()

    plan = await run_setup(lk.url, allowed_addresses=[])

    assert written(lk) == ["UpdateSIPInboundTrunk"]
    [update] = lk.calls("UpdateSIPInboundTrunk", proto_sip.UpdateSIPInboundTrunkRequest)
    assert update.WhichOneof("action") == "replace"
    assert list(update.replace.allowed_addresses) == []
    assert list(update.replace.numbers) == [NUMBER]
    assert update.replace.name == "voicebot"
    assert plan.warnings and "from any SIP address" in plan.warnings[0]
    assert list(lk.inbound_trunks[0].allowed_addresses) == []

    lk.clear_requests()
    again = await run_setup(lk.url, allowed_addresses=[])
    assert written(lk) == []
    assert again.lines()[0] == f'unchanged trunk {first.trunk_id} "voicebot"'


async def test_dry_run_only_reads(lk: FakeLiveKit) -> None:
    plan = await run_setup(lk.url, dry_run=True)

    assert written(lk) == []
    assert lk.inbound_trunks == [] and lk.dispatch_rules == []
    assert [str(a).split(":")[0] for a in plan.actions] == [
        'create trunk "voicebot"',
        'create dispatch rule "voicebot"',
    ]
    assert plan.trunk_id is None and plan.dispatch_rule_id is None

    first = await run_setup(lk.url)
    lk.clear_requests()
    plan = await run_setup(
        lk.url, allowed_addresses=["192.0.2.1"], agent_name="other", dry_run=True
    )

    assert written(lk) == []
    assert [a.verb for a in plan.actions] == ["update", "update"]
    assert plan.lines()[1] == (
        f'update dispatch rule {first.dispatch_rule_id} "voicebot": agents voicebot -> other'
    )


async def test_a_trunk_with_the_number_is_reused_under_its_own_name(lk: FakeLiveKit) -> None:
    trunk_id = lk.add_inbound_trunk(
        proto_sip.SIPInboundTrunkInfo(
            name="carrier", numbers=["+44 20 7946 0000"], allowed_addresses=CARRIER
        )
    )

    plan = await run_setup(lk.url)

    assert plan.lines()[0] == f'unchanged trunk {trunk_id} "carrier"'
    assert written(lk) == ["CreateSIPDispatchRule"]
    assert list(lk.dispatch_rules[0].trunk_ids) == [trunk_id]


async def test_a_rule_that_differs_is_replaced_keeping_its_other_settings(
    lk: FakeLiveKit,
) -> None:
    trunk_id = lk.add_inbound_trunk(
        proto_sip.SIPInboundTrunkInfo(name="voicebot", numbers=[NUMBER], allowed_addresses=CARRIER)
    )
    rule_id = lk.add_dispatch_rule(
        proto_sip.SIPDispatchRuleInfo(
            name="main line",
            trunk_ids=[trunk_id],
            rule=proto_sip.SIPDispatchRule(
                dispatch_rule_direct=proto_sip.SIPDispatchRuleDirect(room_name="lobby")
            ),
            metadata='{"tenant": "acme"}',
            room_config=RoomConfiguration(empty_timeout=30),
        )
    )
    # A catch-all rule (no trunks) is listed by the server's trunk filter but is not ours.
    lk.add_dispatch_rule(
        proto_sip.SIPDispatchRuleInfo(
            rule=proto_sip.SIPDispatchRule(
                dispatch_rule_direct=proto_sip.SIPDispatchRuleDirect(room_name="other")
            )
        )
    )

    plan = await run_setup(lk.url)

    assert written(lk) == ["UpdateSIPDispatchRule"]
    [update] = lk.calls("UpdateSIPDispatchRule", proto_sip.UpdateSIPDispatchRuleRequest)
    assert update.sip_dispatch_rule_id == rule_id
    replacement = update.replace
    assert replacement.rule.dispatch_rule_individual.room_prefix == "call-"
    assert [a.agent_name for a in replacement.room_config.agents] == ["voicebot"]
    assert replacement.room_config.empty_timeout == 30
    assert replacement.metadata == '{"tenant": "acme"}'
    assert list(replacement.trunk_ids) == [trunk_id]
    assert plan.lines()[1] == (
        f'update dispatch rule {rule_id} "main line": one room "lobby" -> individual rooms '
        '"call-..."; agents none -> voicebot'
    )


async def test_the_agents_dispatch_metadata_survives_a_prefix_change(lk: FakeLiveKit) -> None:
    await run_setup(lk.url)
    rule = lk.dispatch_rules[0]
    rule.room_config.agents[0].metadata = "keep me"
    lk.add_dispatch_rule(rule)  # same id: replaces it
    lk.clear_requests()

    await run_setup(lk.url, room_prefix="vb-")

    [update] = lk.calls("UpdateSIPDispatchRule", proto_sip.UpdateSIPDispatchRuleRequest)
    assert update.replace.rule.dispatch_rule_individual.room_prefix == "vb-"
    assert [(a.agent_name, a.metadata) for a in update.replace.room_config.agents] == [
        ("voicebot", "keep me")
    ]


async def test_a_called_number_filter_without_the_number_is_dropped(lk: FakeLiveKit) -> None:
    await run_setup(lk.url)
    rule = lk.dispatch_rules[0]
    rule.numbers.append("+15550100999")
    rule.inbound_numbers.append("+15550100123")
    lk.add_dispatch_rule(rule)
    lk.clear_requests()

    plan = await run_setup(lk.url)

    [update] = lk.calls("UpdateSIPDispatchRule", proto_sip.UpdateSIPDispatchRuleRequest)
    assert list(update.replace.numbers) == []
    assert list(update.replace.inbound_numbers) == ["+15550100123"]  # the caller allow-list stays
    assert plan.lines()[1].endswith("called numbers +15550100999 -> any")
    assert plan.warnings == [
        f'dispatch rule {rule.sip_dispatch_rule_id} "voicebot" only takes calls from +15550100123'
    ]


async def test_fields_newer_than_the_client_neither_trigger_nor_lose_an_update(
    lk: FakeLiveKit,
) -> None:
    await run_setup(lk.url)
    # Field 999 as a newer LiveKit might send it, inside the rule and on the rule info.
    unknown = bytes([0xF8, 0x3E, 0x01])
    stored = lk.dispatch_rules[0]
    rule = proto_sip.SIPDispatchRule.FromString(stored.rule.SerializeToString())
    individual = proto_sip.SIPDispatchRuleIndividual.FromString(
        rule.dispatch_rule_individual.SerializeToString() + unknown
    )
    rule.dispatch_rule_individual.CopyFrom(individual)
    stored.rule.CopyFrom(rule)
    lk.add_dispatch_rule(
        proto_sip.SIPDispatchRuleInfo.FromString(stored.SerializeToString() + unknown)
    )
    lk.clear_requests()

    assert (await run_setup(lk.url)).changes == []
    assert written(lk) == []

    await run_setup(lk.url, agent_name="other")
    [update] = lk.calls("UpdateSIPDispatchRule", proto_sip.UpdateSIPDispatchRuleRequest)
    assert update.replace.SerializeToString().count(unknown) == 2


async def test_a_rule_shared_with_another_trunk_is_left_alone(lk: FakeLiveKit) -> None:
    trunk_id = lk.add_inbound_trunk(
        proto_sip.SIPInboundTrunkInfo(name="voicebot", numbers=[NUMBER], allowed_addresses=CARRIER)
    )
    rule_id = lk.add_dispatch_rule(
        proto_sip.SIPDispatchRuleInfo(
            trunk_ids=[trunk_id, "ST_otherTrunk1"],
            rule=proto_sip.SIPDispatchRule(
                dispatch_rule_direct=proto_sip.SIPDispatchRuleDirect(room_name="lobby")
            ),
        )
    )

    with pytest.raises(SipSetupError, match=f"dispatch rule {rule_id} also routes calls from"):
        await run_setup(lk.url)
    assert written(lk) == []


@pytest.mark.parametrize("written_as", [NUMBER, "44 20 7946 0000"])
async def test_the_number_on_another_trunk_is_not_moved(lk: FakeLiveKit, written_as: str) -> None:
    lk.add_inbound_trunk(proto_sip.SIPInboundTrunkInfo(name="voicebot", numbers=["+15550100999"]))
    other = lk.add_inbound_trunk(proto_sip.SIPInboundTrunkInfo(name="legacy", numbers=[written_as]))

    with pytest.raises(SipSetupError, match=f'already on inbound trunk {other} "legacy"'):
        await run_setup(lk.url)
    assert written(lk) == []


@pytest.mark.parametrize("body", ["text", "twirp"])
async def test_wrong_secret_is_one_clear_line(body: Any) -> None:
    with FakeLiveKit(api_key=KEY, api_secret=SECRET, auth_failure_body=body) as lk:
        with pytest.raises(api.ServerError) as caught:
            await run_setup(lk.url, secret=WRONG_SECRET)
        assert caught.value.status == 401
        assert caught.value.code == ("unknown" if body == "text" else "unauthenticated")
        assert livekit_error_message(caught.value, lk.url) == (
            f"LiveKit rejected the API key/secret (401) at {lk.url}: "
            "check LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
        )
        assert [r.status for r in lk.requests] == [401]


async def test_connection_refused_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await run_setup(url)
    assert livekit_error_message(caught.value, url) == (
        f"cannot connect to LiveKit at {url} (connection refused): is the server running, "
        "and is LIVEKIT_URL right?"
    )


def test_other_errors_have_clear_lines() -> None:
    url = "https://lk.example.com/"
    not_livekit = api.ServerError("unknown", "", status=404)
    assert livekit_error_message(not_livekit, url) == (
        "no LiveKit API at https://lk.example.com (HTTP 404): check LIVEKIT_URL"
    )
    no_sip = api.ServerError("internal", "sip not connected (redis required)", status=500)
    assert livekit_error_message(no_sip, url) == (
        "LiveKit at https://lk.example.com answered internal (HTTP 500): "
        "sip not connected (redis required)"
    )
    assert livekit_error_message(TimeoutError(), url) == (
        "LiveKit at https://lk.example.com did not answer in time: is the server up and reachable?"
    )
    assert livekit_error_message(RuntimeError("a bug"), url) is None


@pytest.mark.parametrize(
    "number",
    ["442079460000", "+44", "+4420794600001234567", "+0442079460000", "+44 20 7946 000x", ""],
)
async def test_a_bad_number_is_refused_before_calling_livekit(lk: FakeLiveKit, number: str) -> None:
    with pytest.raises(ValueError, match=r"invalid phone number .*: use E\.164"):
        await run_setup(lk.url, number=number)
    assert lk.requests == []


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("sip.carrier.example", "is not an IP address or CIDR range"),
        ("203.0.113.5/24", r"has host bits set: did you mean 203\.0\.113\.0/24\?"),
        ("203.0.113.0/33", "is not an IP address or CIDR range"),
        ("", "is not an IP address or CIDR range"),
    ],
)
async def test_a_bad_address_is_refused_before_calling_livekit(
    lk: FakeLiveKit, address: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=f"allowed address '.*' {problem}"):
        await run_setup(lk.url, allowed_addresses=["192.0.2.1", address])
    assert lk.requests == []


def test_numbers_addresses_and_urls_are_normalised() -> None:
    assert normalize_number("+44 (20) 7946-0000") == NUMBER
    assert normalize_addresses(["[2001:db8::1]", "2001:db8:0::1", "10.0.0.0/8"]) == [
        "2001:db8::1",
        "10.0.0.0/8",
    ]
    assert check_livekit_url(" wss://x.livekit.cloud ") == "wss://x.livekit.cloud"
    for bad in ("x.livekit.cloud", "ftp://x", "http://", "http://host:port"):
        with pytest.raises(ValueError, match="is not a LiveKit server URL"):
            check_livekit_url(bad)


# --- the command --------------------------------------------------------------------------------


# --- the outbound trunk (warm transfers to a phone) ---------------------------------------------


async def test_the_outbound_trunk_is_created_then_left_alone(lk: FakeLiveKit) -> None:
    plan = await run_setup(
        lk.url,
        outbound_address="example.pstn.twilio.com",
        outbound_username="acme",
        outbound_password="s3cret-pass",
    )
    [created] = lk.calls("CreateSIPOutboundTrunk", proto_sip.CreateSIPOutboundTrunkRequest)
    trunk = created.trunk
    assert trunk.name == "voicebot-outbound" and trunk.address == "example.pstn.twilio.com"
    assert list(trunk.numbers) == [NUMBER]
    assert (trunk.auth_username, trunk.auth_password) == ("acme", "s3cret-pass")
    assert plan.outbound_trunk_id and plan.outbound_trunk_id.startswith("ST_")
    assert plan.lines()[-1] == (
        'create outbound trunk "voicebot-outbound": address example.pstn.twilio.com; '
        'calls from +442079460000; user "acme"'
    )
    lk.clear_requests()
    again = await run_setup(
        lk.url,
        outbound_address="example.pstn.twilio.com",
        outbound_username="acme",
        outbound_password="s3cret-pass",
    )
    assert written(lk) == [] and again.outbound_trunk_id == plan.outbound_trunk_id
    assert (
        again.lines()[-1]
        == f'unchanged outbound trunk {plan.outbound_trunk_id} "voicebot-outbound"'
    )


async def test_a_new_password_updates_only_the_login(lk: FakeLiveKit) -> None:
    first = await run_setup(
        lk.url, outbound_address="sip.carrier.example", outbound_username="acme"
    )
    lk.clear_requests()
    plan = await run_setup(
        lk.url,
        outbound_address="sip.carrier.example",
        outbound_username="acme",
        outbound_password="rotated-password",
    )
    [update] = lk.calls("UpdateSIPOutboundTrunk", proto_sip.UpdateSIPOutboundTrunkRequest)
    assert update.sip_trunk_id == first.outbound_trunk_id
    assert not update.update.HasField("address") and not update.update.HasField("numbers")
    assert update.update.auth_password == "rotated-password"
    assert "rotated-password" not in " ".join(plan.lines())  # never printed
    [stored] = lk.outbound_trunks
    assert stored.auth_password == "rotated-password" and stored.address == "sip.carrier.example"


async def test_the_outbound_trunk_in_a_dry_run_and_when_ambiguous(lk: FakeLiveKit) -> None:
    plan = await run_setup(lk.url, outbound_address="203.0.113.5:5060", dry_run=True)
    assert written(lk) == [] and plan.outbound_trunk_id is None
    assert plan.lines()[-1].startswith('create outbound trunk "voicebot-outbound"')
    for _ in range(2):
        lk.add_outbound_trunk(
            proto_sip.SIPOutboundTrunkInfo(
                name="voicebot-outbound", address="x.example", numbers=[NUMBER]
            )
        )
    with pytest.raises(SipSetupError, match="2 outbound trunks are named"):
        await run_setup(lk.url, outbound_address="203.0.113.5:5060")


def cli(lk_url: str | None, *args: str, secret: str | None = SECRET) -> Any:
    env = {"LIVEKIT_URL": lk_url, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": secret}
    return CliRunner().invoke(livekit_app, ["setup-sip", *args], env=env)


CARRIER_ARGS = ("--allowed-address", CARRIER[0], "--allowed-address", CARRIER[1])


def test_cli_dry_run_prints_the_plan_and_writes_nothing(lk: FakeLiveKit) -> None:
    done = cli(lk.url, "--number", NUMBER, *CARRIER_ARGS, "--dry-run")

    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        'create trunk "voicebot": number +442079460000; '
        "allowed addresses 203.0.113.0/24, 198.51.100.7",
        'create dispatch rule "voicebot": a room per call (individual rooms "call-..."); '
        'agent "voicebot"; trunk "voicebot" (new)',
        "dry run: nothing changed (2 change(s) planned)",
    ]
    assert written(lk) == []


def test_cli_sets_up_then_finds_nothing_to_change(lk: FakeLiveKit) -> None:
    done = cli(lk.url, "--number", "+44 20 7946 0000", *CARRIER_ARGS, "--agent-name", "ivr")

    assert done.exit_code == 0, done.output
    trunk, rule = lk.inbound_trunks[0].sip_trunk_id, lk.dispatch_rules[0].sip_dispatch_rule_id
    assert done.stdout.splitlines()[-1] == (
        f"done: 2 change(s); calls to {NUMBER} now go to agent 'ivr' "
        f"(trunk {trunk}, dispatch rule {rule})"
    )
    assert lk.dispatch_rules[0].room_config.agents[0].agent_name == "ivr"

    again = cli(lk.url, "--number", NUMBER, *CARRIER_ARGS, "--agent-name", "ivr")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == "nothing to change: LiveKit is already set up"


def test_cli_without_addresses_warns_on_stderr(lk: FakeLiveKit) -> None:
    done = cli(lk.url, "--number", NUMBER, "--dry-run")

    assert done.exit_code == 0, done.output
    assert done.stderr.startswith("warning: no allowed addresses: LiveKit will accept calls")


def test_cli_missing_credentials_names_the_variables_and_exits_2(lk: FakeLiveKit) -> None:
    done = cli(lk.url, "--number", NUMBER, secret=None)

    assert done.exit_code == 2
    assert done.stderr == (
        "error: missing LiveKit settings: set LIVEKIT_API_SECRET "
        "(or pass --url, --api-key, --api-secret)\n"
    )
    assert lk.requests == []

    nothing = cli(None, "--number", NUMBER, secret=None)
    assert nothing.exit_code == 2
    assert "set LIVEKIT_URL, LIVEKIT_API_SECRET " in nothing.stderr


def test_cli_wrong_secret_is_one_line_and_exits_1(lk: FakeLiveKit) -> None:
    done = cli(lk.url, "--number", NUMBER, *CARRIER_ARGS, secret=WRONG_SECRET)

    assert done.exit_code == 1
    assert done.stderr == (
        f"error: LiveKit rejected the API key/secret (401) at {lk.url}: "
        "check LIVEKIT_API_KEY and LIVEKIT_API_SECRET\n"
    )
    assert done.stdout == ""


def test_cli_connection_refused_is_one_line_and_exits_1() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    done = cli(url, "--number", NUMBER, *CARRIER_ARGS)

    assert done.exit_code == 1
    assert done.stderr == (
        f"error: cannot connect to LiveKit at {url} (connection refused): is the server "
        "running, and is LIVEKIT_URL right?\n"
    )


@pytest.mark.parametrize(
    ("url", "args", "problem"),
    [
        ("lk.example.com", ("--number", NUMBER), "is not a LiveKit server URL"),
        (None, ("--number", "020 7946 0000"), "invalid phone number"),
        (None, ("--number", NUMBER, "--allowed-address", "10.1.2.3/8"), "host bits set"),
        (None, ("--number", NUMBER, "--agent-name", " "), "the agent name must not be empty"),
    ],
)
def test_cli_bad_input_exits_2(lk: FakeLiveKit, url: str | None, args: Any, problem: str) -> None:
    done = cli(url or lk.url, *args)

    assert done.exit_code == 2
    assert done.stderr.startswith("error: ") and problem in done.stderr
    assert lk.requests == []


def test_cli_a_livekit_failure_is_one_line(lk: FakeLiveKit) -> None:
    lk.fail("ListSIPInboundTrunk", "internal", "sip not connected (redis required)")
    done = cli(lk.url, "--number", NUMBER, *CARRIER_ARGS)

    assert done.exit_code == 1
    assert done.stderr == (
        f"error: LiveKit at {lk.url} answered internal (HTTP 500): "
        "sip not connected (redis required)\n"
    )


# --- the fake itself: checks the real server makes, used by other LiveKit tests -------------------


async def test_fake_checks_the_grant_each_call_needs(lk: FakeLiveKit) -> None:
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_create=True)).to_jwt()
    async with api.LiveKitAPI.with_token(token, lk.url) as client:
        room = await client.room.create_room(api.CreateRoomRequest(name="call-1"))
        assert room.name == "call-1" and room.sid.startswith("RM_")
        with pytest.raises(api.ServerError) as caught:
            await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        401,
        "unauthenticated",
        "permissions denied",
    )


async def test_fake_scripted_transfer_failure_then_success(lk: FakeLiveKit) -> None:
    caller = lk.add_sip_caller("call-1", "+15550100123")
    lk.fail(
        "TransferSIPParticipant",
        "failed_precondition",
        "sip status 486: Busy Here",
        meta={"sip_status_code": "486", "sip_status": "Busy Here"},
    )
    transfer = api.TransferSIPParticipantRequest(
        room_name="call-1", participant_identity=caller.identity, transfer_to="tel:+15550100200"
    )
    async with api.LiveKitAPI(lk.url, KEY, SECRET) as client:
        with pytest.raises(api.SipCallError) as caught:
            await client.sip.transfer_sip_participant(transfer)
        assert (caught.value.status, caught.value.sip_status_code) == (412, 486)
        assert lk.participants("call-1") != []

        await client.sip.transfer_sip_participant(transfer)
    assert lk.participants("call-1") == []
    assert [r.status for r in lk.requests] == [412, 200]


async def test_fake_rooms_participants_and_egress(lk: FakeLiveKit) -> None:
    caller = lk.add_sip_caller("call-2", "+15550100123")
    async with api.LiveKitAPI(lk.url, KEY, SECRET) as client:
        listed = await client.room.list_participants(api.ListParticipantsRequest(room="call-2"))
        assert [p.identity for p in listed.participants] == [caller.identity]
        updated = await client.room.update_participant(
            proto_room.UpdateParticipantRequest(
                room="call-2", identity=caller.identity, attributes={"voicebot.intent": "billing"}
            )
        )
        assert updated.attributes["voicebot.intent"] == "billing"
        egress = await client.egress.start_room_composite_egress(
            api.RoomCompositeEgressRequest(room_name="call-2", audio_only=True)
        )
        assert egress.egress_id.startswith("EG_")
        stopped = await client.egress.stop_egress(api.StopEgressRequest(egress_id=egress.egress_id))
        assert stopped.status == proto_egress.EGRESS_ENDING
        await client.room.remove_participant(
            api.RoomParticipantIdentity(room="call-2", identity=caller.identity)
        )
        with pytest.raises(api.ServerError) as caught:
            await client.room.remove_participant(
                api.RoomParticipantIdentity(room="call-2", identity=caller.identity)
            )
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    [record] = [r for r in lk.requests if r.method == "StartRoomCompositeEgress"]
    assert record.claims is not None and record.claims["video"]["roomRecord"] is True


async def test_fake_refuses_conflicting_dispatch_rules(lk: FakeLiveKit) -> None:
    plan = await run_setup(lk.url)
    duplicate = api.CreateSIPDispatchRuleRequest(
        rule=proto_sip.SIPDispatchRule(
            dispatch_rule_individual=proto_sip.SIPDispatchRuleIndividual(room_prefix="x-")
        ),
        trunk_ids=[plan.trunk_id or ""],
        room_config=RoomConfiguration(agents=[RoomAgentDispatch(agent_name="voicebot")]),
    )
    async with api.LiveKitAPI(lk.url, KEY, SECRET) as client:
        with pytest.raises(api.ServerError) as caught:
            await client.sip.create_dispatch_rule(duplicate)
    assert caught.value.code == "invalid_argument"
    assert caught.value.message.startswith(
        "Dispatch rule for the same trunk, inbound number, number, and PIN combination "
        f'already exists in dispatch rule "{plan.dispatch_rule_id}"'
    )


def test_cli_outbound_trunk_names_the_workers_setting(
    lk: FakeLiveKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_SIP_OUTBOUND_PASSWORD", "from-the-environment")
    done = cli(lk.url, "--number", NUMBER, *CARRIER_ARGS, "--outbound-address", "sip.example.com")
    assert done.exit_code == 0, done.output
    [trunk] = lk.outbound_trunks
    assert trunk.auth_password == "from-the-environment"
    assert done.stdout.splitlines()[-1] == (
        f"warm transfers to a phone: give the workers VOICEBOT_SIP_OUTBOUND_TRUNK={trunk.sip_trunk_id}"
    )
    assert "from-the-environment" not in done.output
    bad = cli(lk.url, "--number", NUMBER, "--outbound-address", "sip:agent@pbx")
    assert bad.exit_code == 2 and "--outbound-address takes the carrier's SIP host" in bad.output
