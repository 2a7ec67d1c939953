"""What the demo contact centre looks like: the example bot's queues and hours, when callers
call (weekday and hour shares), what they ask for (the intents of flows/intents.yaml with their
flows, queues, handoff chances and reason categories) and the short masked transcripts the bot
and the caller exchange. voicebot/demo/history.py turns this into rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.flows.schema import Hours, Queue

# The example bot (flows/bot.yaml), for a history seeded without a bot directory.
DEFAULT_QUEUES: dict[str, Queue] = {
    "general": Queue(skills=["general"], sla_seconds=60),
    "billing": Queue(skills=["billing"], sla_seconds=20),
    "technical": Queue(skills=["broadband", "mobile"], sla_seconds=60),
    "care": Queue(
        skills=["care", "retention"], sla_seconds=30, overflow_after=300, overflow_to="general"
    ),
    "sales": Queue(skills=["sales"], sla_seconds=120),
}
DEFAULT_HOURS = Hours(
    timezone="Europe/London", weekly={"mon-fri": "08:00-20:00", "sat": "09:00-13:00"}
)
GREETING = "Thanks for calling Acme Telecom. How can I help you today?"

# Share of a week's calls per weekday (Monday first), and of a day's calls per local hour.
DAY_FACTORS = (1.32, 1.12, 1.05, 1.0, 0.96, 0.55, 0.30)
WEEKDAY_HOURS = (
    0.12,
    0.06,
    0.04,
    0.04,
    0.06,
    0.15,
    0.45,
    1.3,
    3.6,
    6.6,
    8.0,
    7.7,
    6.8,
    6.4,
    7.1,
    6.9,
    6.2,
    5.5,
    4.5,
    3.5,
    2.5,
    1.6,
    0.9,
    0.4,
)
SATURDAY_HOURS = (
    0.2,
    0.1,
    0.05,
    0.05,
    0.05,
    0.1,
    0.3,
    0.8,
    2.5,
    5.5,
    7.5,
    8.0,
    7.5,
    6.5,
    5.5,
    4.8,
    4.2,
    3.6,
    3.0,
    2.4,
    1.8,
    1.2,
    0.7,
    0.4,
)
SUNDAY_HOURS = (
    0.3,
    0.15,
    0.1,
    0.1,
    0.1,
    0.15,
    0.3,
    0.6,
    1.5,
    3.5,
    5.0,
    5.6,
    5.6,
    5.4,
    5.2,
    5.0,
    4.8,
    4.5,
    4.2,
    3.8,
    3.0,
    2.0,
    1.2,
    0.6,
)
HOLIDAY_FACTOR = 0.35
TALK_SECONDS = {"general": 200, "billing": 250, "technical": 420, "care": 380, "sales": 460}
WRAP_SECONDS = 40.0
PATIENCE_SECONDS = 170.0  # mean, exponential: an abandon rate of a few percent at 80/20
BREAK_SECONDS = 30 * 60
DISPOSITIONS = (
    ("resolved", 62),
    ("follow_up", 14),
    ("escalated", 6),
    ("callback_promised", 6),
    ("other", 10),
    ("no_answer", 2),
)
CHANNELS = (("sip", 72), ("chat", 14), ("softphone", 8), ("api", 6))
TURN_ENDS = (("turn_detector", 60), ("silence", 28), ("dtmf", 12))
NAMES = (
    "Ann Example",
    "Ben Sample",
    "Cara Jones",
    "Dev Patel",
    "Eve Murphy",
    "Femi Ade",
    "Gail Wong",
    "Hugo Brown",
    "Isla Reid",
    "Jon Evans",
    "Kemi Obi",
    "Liam Ward",
)
AGENT_NAMES = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "uma",
    "victor",
    "wendy",
    "xavier",
    "yara",
    "zoe",
)
UNANSWERED = (
    "do you do a student discount",
    "can I get a refund for roaming charges",
    "why was I charged for a paper bill",
    "can I pause my contract while abroad",
    "do you offer landline only",
    "how do I get a PAC code",
    "is there a charge for an eSIM",
    "can I change my bill date",
    "do you have a social tariff for broadband",
    "can I keep my number if I move abroad",
)


@dataclass(frozen=True)
class Reason:
    kind: str  # the category (voicebot/engine/reasons.py)
    text: str
    weight: float


@dataclass(frozen=True)
class Intent:
    """One intent of the example bot: how often, its flow, and where it goes when it hands off."""

    name: str | None
    weight: float
    flow: str | None
    queue: str
    handoff: float  # chance of a handoff when the queues are open
    reasons: tuple[Reason, ...]
    said: tuple[str, ...]  # what the caller opens with (masked)
    script: tuple[tuple[str, str], ...]  # the rest of a contained call: (role, text)
    priority: str = "normal"
    skills: tuple[str, ...] = ()
    verify: bool = False
    closed_ends: bool = False  # outside hours the bot's ``closed`` branch ends the call


ASKED = Reason("asked", "caller asked for a person", 1.0)
INTENTS: tuple[Intent, ...] = (
    Intent(
        "check_balance",
        16,
        "check_balance",
        "billing",
        0.15,
        (
            Reason("no_match", "could not verify account", 0.5),
            Reason("asked", "caller asked for a person", 0.35),
            Reason("technical", "account lookup failed", 0.15),
        ),
        (
            "what's my balance",
            "how much do I owe",
            "can I check my balance please",
            "how much is my bill",
        ),
        (
            ("bot", "Please say or key in your eight digit account number."),
            ("keypad", "********"),
            ("bot", "And the postcode on the account?"),
            ("caller", "**** ***"),
            ("bot", "Your balance is **** pounds. Would you like to pay it now?"),
            ("caller", "no thanks"),
            ("bot", "Thank you for calling Acme Telecom. Goodbye."),
        ),
        verify=True,
    ),
    Intent(
        "pay_bill",
        12,
        "pay_bill",
        "billing",
        0.25,
        (
            Reason("no_match", "card number not accepted", 0.45),
            Reason("technical", "payment failed", 0.3),
            Reason("asked", "caller asked for a person", 0.25),
        ),
        ("I want to pay my bill", "can I pay by card", "make a payment please"),
        (
            ("bot", "Please say or key in your eight digit account number."),
            ("keypad", "********"),
            ("bot", "How much would you like to pay, in pounds?"),
            ("caller", "**"),
            ("bot", "Please key in your card number, followed by the hash key."),
            ("keypad", "****1111"),
            ("bot", "Shall I take ** pounds from the card ending 1111?"),
            ("caller", "yes"),
            ("bot", "Thank you. Your payment is done. Your receipt number is ****."),
        ),
        verify=True,
    ),
    Intent(
        "report_fault",
        15,
        "report_fault",
        "technical",
        0.30,
        (
            Reason("technical", "outage check failed", 0.2),
            Reason("technical", "engineer booking failed", 0.2),
            Reason("asked", "caller asked for a person", 0.35),
            Reason("no_match", "caller could not be understood", 0.25),
        ),
        (
            "my internet is down",
            "broadband not working",
            "no signal on my phone",
            "the wifi keeps dropping",
        ),
        (
            ("bot", "Is the problem with your broadband, your landline or your mobile?"),
            ("caller", "broadband"),
            ("bot", "What's the postcode where the problem is?"),
            ("caller", "**** ***"),
            ("bot", "There is a known broadband problem near **** ***. It should be fixed by 6pm."),
        ),
        skills=(),
    ),
    Intent(
        "opening_hours",
        7,
        "opening_hours",
        "general",
        0.03,
        (ASKED,),
        ("what are your opening hours", "when are you open", "are you open on saturday"),
        (
            (
                "bot",
                "Our advisers are available Monday to Friday from 8am to 8pm, "
                "and Saturday from 9am to 1pm.",
            ),
            ("caller", "thanks, bye"),
            ("bot", "Thank you for calling Acme Telecom. Goodbye."),
        ),
    ),
    Intent(
        "question",
        14,
        "question",
        "general",
        0.15,
        (
            Reason("asked", "caller asked for a person", 0.6),
            Reason("no_match", "caller could not be understood", 0.4),
        ),
        (
            "how much is roaming in spain",
            "do you charge for paper bills",
            "can I use my phone abroad",
            "how do I set up voicemail",
            "does unused data roll over",
        ),
        (
            ("bot", "Roaming in Europe costs 2 pounds a day on top of your plan."),
            ("caller", "that's all thanks"),
            ("bot", "Thank you for calling Acme Telecom. Goodbye."),
        ),
    ),
    Intent(
        "cancel_contract",
        5,
        "cancel_contract",
        "care",
        0.95,
        (
            Reason("flow", "cancellation: price", 0.45),
            Reason("flow", "cancellation: service", 0.25),
            Reason("flow", "cancellation: moving", 0.1),
            Reason("no_match", "cancellation", 0.2),
        ),
        ("I want to cancel my contract", "I'd like to leave", "I'm switching to another provider"),
        (
            (
                "bot",
                "I'm sorry to hear that. Is it because of the price, the service, a move, "
                "or something else?",
            ),
            ("caller", "the price"),
            ("bot", "Thank you for telling me. Goodbye."),
        ),
        skills=("retention",),
    ),
    Intent(
        "upgrade",
        7,
        "upgrade",
        "sales",
        0.75,
        (Reason("flow", "upgrade or new line", 1.0),),
        ("I want to upgrade my phone", "am I due an upgrade", "add a new line"),
        (
            ("bot", "You can upgrade online at acme dot example. Anything else?"),
            ("caller", "no that's it"),
            ("bot", "Thank you for calling Acme Telecom. Goodbye."),
        ),
        closed_ends=True,
    ),
    Intent(
        "lost_phone",
        3,
        "lost_phone",
        "care",
        0.95,
        (
            Reason("flow", "lost or stolen phone, SIM blocked", 0.85),
            Reason("technical", "SIM block failed for a lost phone", 0.15),
        ),
        ("I lost my phone", "my phone was stolen", "block my sim"),
        (
            ("bot", "I'm sorry to hear that. I can block your SIM now so nobody can use it."),
            ("bot", "Please say or key in your eight digit account number."),
            ("keypad", "********"),
            ("bot", "Your SIM is blocked."),
        ),
        priority="high",
        verify=True,
    ),
    Intent(
        "moving_house",
        4,
        "moving_house",
        "general",
        0.9,
        (Reason("flow", "home move on ****-**-**", 1.0),),
        ("I'm moving house", "transfer my broadband to a new address"),
        (
            ("bot", "What date are you moving?"),
            ("caller", "the ** of next month"),
            ("bot", "What email address should we send the moving details to?"),
            ("caller", "****@****"),
        ),
    ),
    Intent(
        "complaint",
        4,
        "complaint",
        "care",
        0.97,
        (Reason("angry", "complaint", 1.0),),
        ("I want to make a complaint", "I'm not happy with the service"),
        (("bot", "I'm sorry to hear that."), ("caller", "never mind, bye")),
        priority="high",
    ),
    Intent(
        "main_menu",
        4,
        "main_menu",
        "general",
        0.3,
        (
            Reason("flow", "chose an adviser from the menu", 0.6),
            Reason("no_match", "no menu choice", 0.4),
        ),
        ("menu", "what are my options"),
        (
            ("bot", "For billing, press 1 or say billing. For a fault, press 2 or say fault."),
            ("keypad", "3"),
            ("bot", "Our advisers are available Monday to Friday from 8am to 8pm."),
            ("bot", "Thank you for calling Acme Telecom. Goodbye."),
        ),
    ),
    Intent(
        "agent",
        7,
        None,
        "general",
        0.97,
        (ASKED,),
        ("talk to a person", "can I speak to an adviser", "agent", "real human please"),
        (
            (
                "bot",
                "Our advisers are available Monday to Friday from 8am to 8pm. "
                "I can still help with most things.",
            ),
            ("caller", "ok bye"),
        ),
        closed_ends=True,
    ),
    Intent(
        None,
        2,
        None,
        "general",
        0.5,
        (Reason("no_match", "caller could not be understood", 1.0),),
        ("hmm yeah the thing from the letter", "it's about the er", "hello? hello?"),
        (
            (
                "bot",
                "Sorry, I didn't catch that. You can ask about your balance, paying a bill, "
                "a fault, or our opening hours.",
            ),
            ("caller", "never mind"),
        ),
    ),
)
ANGRY_SHARE = 0.03  # callers whose anger trigger fires (sentiment.anger > 0.8): care, high
BOT_HANGUP = 0.04  # callers who hang up on the bot mid-flow
AFTER_HOURS_CALLBACK = 0.5  # of handoffs outside hours: a callback request, else "we're closed"
WAIT_CALLBACK = 0.3  # of sales callers still waiting after 90 s: press 1 for a callback
