"""Make LiveKit send calls to a phone number to the voicebot agent, one room per call.

LiveKit needs two things for that: an inbound SIP trunk that accepts calls to the number (from
the carrier's addresses), and a dispatch rule on that trunk that puts each caller in a room of
their own and dispatches the agent there by name. Warm transfers to a phone need a third: an
outbound trunk through the carrier, calling from the number. :func:`setup_sip` reads what
LiveKit has and changes only what differs, so it is safe to run again; ``dry_run`` only reads.

:func:`livekit_error_message` turns what the LiveKit client raises (Twirp errors, connection
failures) into one line for people.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from google.protobuf.message import DecodeError
from livekit.api import LiveKitAPI, ServerError
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.room import RoomConfiguration
from livekit.protocol.sip import (
    CreateSIPDispatchRuleRequest,
    CreateSIPInboundTrunkRequest,
    CreateSIPOutboundTrunkRequest,
    ListSIPDispatchRuleRequest,
    ListSIPInboundTrunkRequest,
    ListSIPOutboundTrunkRequest,
    SIPDispatchRule,
    SIPDispatchRuleIndividual,
    SIPDispatchRuleInfo,
    SIPInboundTrunkInfo,
    SIPOutboundTrunkInfo,
)

_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_NUMBER_FORMATTING = re.compile(r"[\s\-().]")
_LIVEKIT_NUMBER = re.compile(r"^\+?[\d\- ()]+$")
_URL_EXAMPLES = "e.g. wss://<project>.livekit.cloud or http://localhost:7880"


class SipSetupError(RuntimeError):
    """LiveKit's SIP configuration is ambiguous or shared, so it is left for a person to fix."""


@dataclass(frozen=True)
class SetupAction:
    """One step of the plan: what happens (or happened) to the trunk or the dispatch rule."""

    verb: Literal["create", "update", "unchanged"]
    target: Literal["trunk", "dispatch rule", "outbound trunk"]
    name: str  # the id, or the quoted name of something not created yet
    changes: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"{self.verb} {self.target} {self.name}"
        return f"{head}: {'; '.join(self.changes)}" if self.changes else head


@dataclass
class SetupPlan:
    """What :func:`setup_sip` did, or with ``dry_run`` would do, in order."""

    dry_run: bool
    actions: list[SetupAction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trunk_id: str | None = None  # None when a dry run would create the trunk
    dispatch_rule_id: str | None = None
    outbound_trunk_id: str | None = None  # VOICEBOT_SIP_OUTBOUND_TRUNK for the workers

    @property
    def changes(self) -> list[SetupAction]:
        return [a for a in self.actions if a.verb != "unchanged"]

    def lines(self) -> list[str]:
        return [str(a) for a in self.actions]


# --- input checks ---------------------------------------------------------------------------------


def normalize_number(number: str) -> str:
    """The number in E.164 (``+`` and 8 to 15 digits), spaces, dashes, dots and brackets dropped."""
    compact = _NUMBER_FORMATTING.sub("", number)
    if not _E164.match(compact):
        raise ValueError(
            f"invalid phone number {number!r}: use E.164, a '+' then the country code and "
            "number, 8 to 15 digits in all (e.g. +442079460000)"
        )
    return compact


def normalize_addresses(addresses: Iterable[str]) -> list[str]:
    """Each address as an IP or CIDR range in canonical form, duplicates dropped."""
    result: list[str] = []
    for raw in addresses:
        text = raw.strip()
        # LiveKit also writes IPv6 as [::1] or [::]/8.
        bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](/\d+)?", text)
        if bracketed:
            text = bracketed.group(1) + (bracketed.group(2) or "")
        try:
            value = str(ipaddress.ip_network(text) if "/" in text else ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(_address_problem(raw, text)) from None
        if value not in result:
            result.append(value)
    return result


def _address_problem(raw: str, text: str) -> str:
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            pass
        else:
            return f"allowed address {raw!r} has host bits set: did you mean {network}?"
    return (
        f"allowed address {raw!r} is not an IP address or CIDR range "
        "(e.g. 203.0.113.10 or 203.0.113.0/24)"
    )


def check_sip_host(text: str) -> str:
    """A carrier's SIP host for outgoing calls: a name or address, with a port if need be."""
    host = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", host):
        raise ValueError(
            f"--outbound-address takes the carrier's SIP host (e.g. example.pstn.twilio.com "
            f"or 203.0.113.5:5060), not {text!r}"
        )
    return host


def check_livekit_url(url: str) -> str:
    """The URL, if the LiveKit client can use it (ws, wss, http or https, with a host)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        usable = parts.scheme.lower() in ("ws", "wss", "http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        usable = False
    if not usable:
        raise ValueError(f"LIVEKIT_URL {url!r} is not a LiveKit server URL: use {_URL_EXAMPLES}")
    return text


# --- the setup ------------------------------------------------------------------------------------


async def setup_sip(
    api: LiveKitAPI,
    *,
    number: str,
    trunk_name: str = "voicebot",
    allowed_addresses: Sequence[str],
    agent_name: str = "voicebot",
    room_prefix: str = "call-",
    dry_run: bool = False,
    outbound_address: str | None = None,
    outbound_username: str = "",
    outbound_password: str = "",
) -> SetupPlan:
    """Make LiveKit's inbound trunk and dispatch rule for ``number`` match what is asked.

    The trunk is found by ``trunk_name`` (or, failing that, by the number) and gets exactly
    ``number`` and ``allowed_addresses``; the dispatch rule bound to it puts each caller in a
    room of their own (``room_prefix``...) and dispatches the agent ``agent_name`` there.
    With ``outbound_address`` (the carrier's SIP host for outgoing calls) the outbound trunk
    ``<trunk_name>-outbound`` calls from ``number`` through it, with the given credentials.
    Raises ValueError for bad input, SipSetupError when LiveKit's state is ambiguous, and what
    the LiveKit client raises (see :func:`livekit_error_message`).
    """
    number = normalize_number(number)
    addresses = normalize_addresses(allowed_addresses)
    if outbound_address is not None:
        outbound_address = check_sip_host(outbound_address)
    if not trunk_name.strip():
        raise ValueError("the trunk name must not be empty")
    if not agent_name.strip():
        raise ValueError("the agent name must not be empty")
    plan = SetupPlan(dry_run=dry_run)
    if not addresses:
        plan.warnings.append(
            f"no allowed addresses: LiveKit will accept calls to {number} from any SIP address; "
            "give your carrier's signalling addresses with --allowed-address"
        )
    plan.trunk_id = await _ensure_trunk(api, plan, number, trunk_name, addresses)
    plan.dispatch_rule_id = await _ensure_dispatch_rule(
        api, plan, plan.trunk_id, number, trunk_name, agent_name, room_prefix
    )
    if outbound_address is not None:
        plan.outbound_trunk_id = await _ensure_outbound_trunk(
            api,
            plan,
            SIPOutboundTrunkInfo(
                name=f"{trunk_name}-outbound",
                address=outbound_address,
                numbers=[number],
                auth_username=outbound_username,
                auth_password=outbound_password,
            ),
        )
    return plan


async def _ensure_outbound_trunk(
    api: LiveKitAPI, plan: SetupPlan, wanted: SIPOutboundTrunkInfo
) -> str | None:
    """The outbound trunk named ``wanted.name``, created or brought in line with ``wanted``."""
    listed = await api.sip.list_outbound_trunk(ListSIPOutboundTrunkRequest())
    named = [t for t in listed.items if t.sip_trunk_id and t.name == wanted.name]
    if len(named) > 1:
        raise SipSetupError(
            f"{len(named)} outbound trunks are named {_quote(wanted.name)} "
            f"({', '.join(t.sip_trunk_id for t in named)}): delete or rename all but one"
        )
    login = f"user {_quote(wanted.auth_username)}" if wanted.auth_username else "no login"
    if not named:
        plan.actions.append(
            SetupAction(
                "create",
                "outbound trunk",
                _quote(wanted.name),
                (f"address {wanted.address}", f"calls from {wanted.numbers[0]}", login),
            )
        )
        if plan.dry_run:
            return None
        created = await api.sip.create_outbound_trunk(CreateSIPOutboundTrunkRequest(trunk=wanted))
        return created.sip_trunk_id
    trunk = named[0]
    changes: list[str] = []
    if trunk.address != wanted.address:
        changes.append(f"address {trunk.address or 'none'} -> {wanted.address}")
    numbers_differ = sorted(trunk.numbers) != list(wanted.numbers)
    if numbers_differ:
        changes.append(f"numbers {_show(list(trunk.numbers))} -> {wanted.numbers[0]}")
    login_differs = (trunk.auth_username, trunk.auth_password) != (
        wanted.auth_username,
        wanted.auth_password,
    )
    if login_differs:
        changes.append(f"login -> {login}")  # the password is never printed
    name = f"{trunk.sip_trunk_id} {_quote(trunk.name)}"
    if not changes:
        plan.actions.append(SetupAction("unchanged", "outbound trunk", name))
        return trunk.sip_trunk_id
    plan.actions.append(SetupAction("update", "outbound trunk", name, tuple(changes)))
    if not plan.dry_run:
        # only what differs is sent: transport, headers and media set elsewhere stay
        await api.sip.update_outbound_trunk_fields(
            trunk.sip_trunk_id,
            address=wanted.address if trunk.address != wanted.address else None,
            numbers=list(wanted.numbers) if numbers_differ else None,
            auth_username=wanted.auth_username if login_differs else None,
            auth_password=wanted.auth_password if login_differs else None,
        )
    return trunk.sip_trunk_id


async def _ensure_trunk(
    api: LiveKitAPI, plan: SetupPlan, number: str, trunk_name: str, addresses: list[str]
) -> str | None:
    listed = await api.sip.list_inbound_trunk(ListSIPInboundTrunkRequest())
    # LiveKit answers an id it does not have with an empty item; never take one for a trunk.
    trunks = [t for t in listed.items if t.sip_trunk_id]
    trunk = _pick_trunk(trunks, trunk_name, number)
    holders = [
        t
        for t in trunks
        if number in _numbers(t) and (trunk is None or t.sip_trunk_id != trunk.sip_trunk_id)
    ]
    if holders:
        # Two trunks with one number conflict in LiveKit; moving the number is not our call.
        raise SipSetupError(
            f"{number} is already on inbound trunk {_describe_trunk(holders[0])}: remove it "
            f"there, or pass that trunk's name as --trunk-name"
        )

    if trunk is None:
        plan.actions.append(
            SetupAction(
                "create",
                "trunk",
                _quote(trunk_name),
                (f"number {number}", f"allowed addresses {_show(addresses)}"),
            )
        )
        if plan.dry_run:
            return None
        created = await api.sip.create_inbound_trunk(
            CreateSIPInboundTrunkRequest(
                trunk=SIPInboundTrunkInfo(
                    name=trunk_name, numbers=[number], allowed_addresses=addresses
                )
            )
        )
        return created.sip_trunk_id

    changes: list[str] = []
    numbers_differ = _numbers(trunk) != [number]
    if numbers_differ:
        changes.append(f"numbers {_show(list(trunk.numbers))} -> {number}")
    current_addresses = _canonical_addresses(trunk.allowed_addresses)
    addresses_differ = set(current_addresses) != set(addresses)
    if addresses_differ:
        changes.append(
            f"allowed addresses {_show(list(trunk.allowed_addresses))} -> {_show(addresses)}"
        )
    name = f"{trunk.sip_trunk_id} {_quote(trunk.name)}" if trunk.name else trunk.sip_trunk_id
    if not changes:
        plan.actions.append(SetupAction("unchanged", "trunk", name))
        return trunk.sip_trunk_id
    plan.actions.append(SetupAction("update", "trunk", name, tuple(changes)))
    if plan.dry_run:
        return trunk.sip_trunk_id
    if addresses_differ and not addresses:
        # update_inbound_trunk_fields drops ListUpdate.clear, and an empty `set` is refused by
        # newer servers, so emptying the list takes a whole-trunk replace.
        replacement = SIPInboundTrunkInfo()
        replacement.CopyFrom(trunk)
        del replacement.allowed_addresses[:]
        if numbers_differ:
            del replacement.numbers[:]
            replacement.numbers.append(number)
        await api.sip.update_inbound_trunk(trunk.sip_trunk_id, replacement)
    else:
        # Only the differing lists are sent, so settings made elsewhere (auth, headers,
        # media) stay as they are.
        await api.sip.update_inbound_trunk_fields(
            trunk.sip_trunk_id,
            numbers=[number] if numbers_differ else None,
            allowed_addresses=addresses if addresses_differ else None,
        )
    return trunk.sip_trunk_id


async def _ensure_dispatch_rule(
    api: LiveKitAPI,
    plan: SetupPlan,
    trunk_id: str | None,
    number: str,
    trunk_name: str,
    agent_name: str,
    room_prefix: str,
) -> str | None:
    wanted_rule = SIPDispatchRule(
        dispatch_rule_individual=SIPDispatchRuleIndividual(room_prefix=room_prefix)
    )
    summary = (
        f"a room per call ({_describe_rule(wanted_rule)})",
        f"agent {_quote(agent_name)}",
        f"trunk {trunk_id or _quote(trunk_name) + ' (new)'}",
    )
    if trunk_id is None:  # a dry run that would create the trunk: no rule can be bound to it yet
        plan.actions.append(SetupAction("create", "dispatch rule", _quote(trunk_name), summary))
        return None

    # The server's trunk filter also returns catch-all rules (no trunks); those are not ours.
    listed = await api.sip.list_dispatch_rule(ListSIPDispatchRuleRequest(trunk_ids=[trunk_id]))
    rules = [r for r in listed.items if r.sip_dispatch_rule_id and trunk_id in r.trunk_ids]
    rule = _pick_rule(rules, trunk_id, trunk_name)
    if rule is None:
        plan.actions.append(SetupAction("create", "dispatch rule", _quote(trunk_name), summary))
        if plan.dry_run:
            return None
        created = await api.sip.create_dispatch_rule(
            # The request's own fields, rather than its newer `dispatch_rule`, so that servers
            # from before that field existed read the rule too.
            CreateSIPDispatchRuleRequest(
                rule=wanted_rule,
                trunk_ids=[trunk_id],
                name=trunk_name,
                room_config=RoomConfiguration(agents=[RoomAgentDispatch(agent_name=agent_name)]),
            )
        )
        return created.sip_dispatch_rule_id

    changes: list[str] = []
    individual = rule.rule.dispatch_rule_individual
    # Compared field by field: message equality would also count fields added to LiveKit's
    # protocol after this client, and no_randomness only shapes the room names.
    rule_differs = (
        rule.rule.WhichOneof("rule") != "dispatch_rule_individual"
        or individual.room_prefix != room_prefix
        or bool(individual.pin)
    )
    if rule_differs:
        changes.append(f"{_describe_rule(rule.rule)} -> {_describe_rule(wanted_rule)}")
    agents = [a.agent_name for a in rule.room_config.agents]
    if agents != [agent_name]:
        changes.append(f"agents {_show(agents)} -> {agent_name}")
    called = sorted({_livekit_normalized(n) for n in rule.numbers})
    if called and number not in called:
        changes.append(f"called numbers {_show(list(rule.numbers))} -> any")
    name = rule.sip_dispatch_rule_id + (f" {_quote(rule.name)}" if rule.name else "")
    if rule.inbound_numbers:
        plan.warnings.append(
            f"dispatch rule {name} only takes calls from {_show(list(rule.inbound_numbers))}"
        )
    if not changes:
        plan.actions.append(SetupAction("unchanged", "dispatch rule", name))
        return rule.sip_dispatch_rule_id
    shared = [t for t in rule.trunk_ids if t != trunk_id]
    if shared:
        # Changing it would also change how calls on the other trunks are routed.
        raise SipSetupError(
            f"dispatch rule {name} also routes calls from trunk(s) {', '.join(shared)} and "
            f"would need changing ({'; '.join(changes)}): remove {trunk_id} from it, or delete "
            "it, then run again"
        )
    plan.actions.append(SetupAction("update", "dispatch rule", name, tuple(changes)))
    if plan.dry_run:
        return rule.sip_dispatch_rule_id
    replacement = SIPDispatchRuleInfo()
    replacement.CopyFrom(rule)
    if rule_differs:
        no_randomness = individual.no_randomness
        replacement.rule.CopyFrom(wanted_rule)
        replacement.rule.dispatch_rule_individual.no_randomness = no_randomness
    if called and number not in called:
        del replacement.numbers[:]
    # Keep the agent's own dispatch settings (metadata) if it is already there.
    kept = [a for a in rule.room_config.agents if a.agent_name == agent_name][:1]
    del replacement.room_config.agents[:]
    replacement.room_config.agents.extend(kept or [RoomAgentDispatch(agent_name=agent_name)])
    # A field update cannot change room_config, so the rule is replaced as a whole; fields this
    # client does not know survive the round trip as unknown fields.
    await api.sip.update_dispatch_rule(rule.sip_dispatch_rule_id, replacement)
    return rule.sip_dispatch_rule_id


def _pick_trunk(
    trunks: list[SIPInboundTrunkInfo], trunk_name: str, number: str
) -> SIPInboundTrunkInfo | None:
    named = [t for t in trunks if t.name == trunk_name]
    if len(named) > 1:
        with_number = [t for t in named if number in _numbers(t)]
        if len(with_number) == 1:
            return with_number[0]
        raise SipSetupError(
            f"{len(named)} inbound trunks are named {_quote(trunk_name)} "
            f"({', '.join(t.sip_trunk_id for t in named)}): delete or rename all but one"
        )
    if named:
        return named[0]
    by_number = [t for t in trunks if number in _numbers(t)]
    if len(by_number) > 1:
        raise SipSetupError(
            f"{number} is on {len(by_number)} inbound trunks "
            f"({', '.join(_describe_trunk(t) for t in by_number)}): keep it on one"
        )
    return by_number[0] if by_number else None


def _pick_rule(
    rules: list[SIPDispatchRuleInfo], trunk_id: str, trunk_name: str
) -> SIPDispatchRuleInfo | None:
    if len(rules) <= 1:
        return rules[0] if rules else None
    named = [r for r in rules if r.name == trunk_name]
    if len(named) == 1:
        return named[0]
    raise SipSetupError(
        f"{len(rules)} dispatch rules route calls from trunk {trunk_id} "
        f"({', '.join(r.sip_dispatch_rule_id for r in rules)}): delete all but one, or name the "
        f"one to keep {_quote(trunk_name)}"
    )


def _numbers(trunk: SIPInboundTrunkInfo) -> list[str]:
    """The trunk's numbers as LiveKit matches calls to them (livekit/protocol NormalizeNumber)."""
    return sorted({_livekit_normalized(n) for n in trunk.numbers})


def _livekit_normalized(number: str) -> str:
    if not _LIVEKIT_NUMBER.match(number):
        return number
    digits = re.sub(r"[ \-()]", "", number)
    return digits if digits.startswith("+") else "+" + digits


def _canonical_addresses(addresses: Iterable[str]) -> list[str]:
    result = []
    for address in addresses:
        try:
            result.extend(normalize_addresses([address]))
        except ValueError:
            result.append(address)  # a host name or such: compared as written
    return result


def _describe_trunk(trunk: SIPInboundTrunkInfo) -> str:
    return f"{trunk.sip_trunk_id} {_quote(trunk.name)}" if trunk.name else trunk.sip_trunk_id


def _describe_rule(rule: SIPDispatchRule) -> str:
    kind = rule.WhichOneof("rule")
    pin = " with a PIN" if kind and getattr(rule, kind).pin else ""
    if kind == "dispatch_rule_individual":
        return f"individual rooms {_quote(rule.dispatch_rule_individual.room_prefix + '...')}{pin}"
    if kind == "dispatch_rule_direct":
        return f"one room {_quote(rule.dispatch_rule_direct.room_name)}{pin}"
    if kind == "dispatch_rule_callee":
        return f"a room per called number {_quote(rule.dispatch_rule_callee.room_prefix)}{pin}"
    return "no rule"


def _quote(text: str) -> str:
    return f'"{text}"'


def _show(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


# --- errors for people ----------------------------------------------------------------------------


def livekit_error_message(exc: BaseException, url: str) -> str | None:
    """One line saying what went wrong talking to LiveKit at ``url``; None if ``exc`` is not
    a LiveKit or connection error (a bug, which should keep its traceback)."""
    where = url.rstrip("/")
    if isinstance(exc, ServerError):
        return _server_error_message(exc, where)
    # ServerTimeoutError is a ClientError too, so time-outs are checked first.
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return f"LiveKit at {where} did not answer in time: is the server up and reachable?"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid LiveKit URL {url!r}: use {_URL_EXAMPLES}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot find the LiveKit host {exc.host!r} (DNS lookup failed): check LIVEKIT_URL"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return f"the TLS handshake with LiveKit at {where} failed: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = exc.os_error.errno == errno.ECONNREFUSED  # also when several addresses were tried
        reason = "connection refused" if refused else exc.strerror or str(exc.os_error)
        return (
            f"cannot connect to LiveKit at {where} ({reason}): is the server running, and is "
            "LIVEKIT_URL right?"
        )
    if isinstance(exc, aiohttp.ClientError):
        return f"the connection to LiveKit at {where} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, DecodeError):
        return f"the server at {where} answered, but not as LiveKit does: check LIVEKIT_URL"
    return None


def _server_error_message(exc: ServerError, where: str) -> str:
    detail = f": {exc.message}" if exc.message else ""
    if exc.status == 401:
        # livekit-server's middleware answers a bad key or signature with a bare 401 (the client
        # then reports code "unknown"); a token without the needed grant gets "unauthenticated".
        return (
            f"LiveKit rejected the API key/secret (401) at {where}: check LIVEKIT_API_KEY and "
            "LIVEKIT_API_SECRET"
        )
    if exc.status == 403:
        return f"LiveKit at {where} refused the request (403 {exc.code}){detail}"
    if exc.code == "bad_route":
        return (
            f"LiveKit at {where} does not know this call{detail}: the server may be too old "
            "for the SIP API"
        )
    if exc.status == 404 and exc.code == "unknown":
        return f"no LiveKit API at {where} (HTTP 404): check LIVEKIT_URL"
    return f"LiveKit at {where} answered {exc.code} (HTTP {exc.status}){detail}"
