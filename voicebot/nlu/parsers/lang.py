"""Per-language word tables and per-region conventions for the slot parsers.

A language is a `Words` table (what callers say) and a region is a `Locale` (how they write
dates and dial numbers). Adding a language means adding one `Words` table and its `Locale`
entries here; the parsers only read these tables. Only English exists today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ENGLISH", "Locale", "Words", "get_locale"]


@dataclass(frozen=True)
class Words:
    """Word tables for one spoken language, shared by its regional variants."""

    units: Mapping[str, int]
    # Digit words that are also everyday words; they only count next to a real digit.
    weak_units: frozenset[str]
    teens: Mapping[str, int]
    tens: Mapping[str, int]
    hundred: frozenset[str]
    scales: Mapping[str, int]
    repeaters: Mapping[str, int]
    fillers: frozenset[str]
    # Words a caller may put between digit groups without starting something new.
    digit_joiners: frozenset[str]
    articles: frozenset[str]
    minus: frozenset[str]
    point: frozenset[str]
    half: frozenset[str]
    quarter: frozenset[str]
    quarters: frozenset[str]
    currency_major: frozenset[str]
    currency_minor: frozenset[str]
    ordinals: Mapping[str, int]
    ordinal_suffixes: frozenset[str]
    last: frozenset[str]
    position_words: frozenset[str]
    months: Mapping[str, int]
    weekdays: Mapping[str, int]
    date_connectors: frozenset[str]
    relative_days: Mapping[tuple[str, ...], int]
    next_words: frozenset[str]
    previous_words: frozenset[str]
    week: frozenset[str]
    in_words: frozenset[str]
    ago_words: frozenset[str]
    from_now: tuple[str, ...]
    day_units: Mapping[str, int]
    month_units: frozenset[str]
    year_units: frozenset[str]
    fortnight: frozenset[str]
    noon: frozenset[str]
    midnight: frozenset[str]
    past_words: frozenset[str]
    to_words: frozenset[str]
    minute_words: frozenset[str]
    hour_words: frozenset[str]
    oclock: tuple[tuple[str, ...], ...]
    am: frozenset[str]
    pm: frozenset[str]
    morning: frozenset[str]
    afternoon: frozenset[str]
    night: frozenset[str]
    time_anchors: frozenset[str]
    yes_phrases: tuple[str, ...]
    no_phrases: tuple[str, ...]
    unsure_phrases: tuple[str, ...]
    negators: frozenset[str]
    plus: frozenset[str]
    email_at: tuple[tuple[str, ...], ...]
    email_symbols: Mapping[tuple[str, ...], str]
    email_lead_in: frozenset[str]
    email_double: frozenset[str]
    # "capital j": case words said while spelling, which addresses ignore.
    email_case_words: frozenset[str]
    choice_negators: frozenset[str]
    # Words around a bare number answer to a menu: "two please".
    choice_polite: frozenset[str]


_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "naught": 0,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "niner": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}  # fmt: skip
_WEEKDAYS = {
    "monday": 0, "tuesday": 1, "tues": 1, "wednesday": 2, "weds": 2, "thursday": 3,
    "thurs": 3, "friday": 4, "saturday": 5, "sunday": 6,
}  # fmt: skip

_YES = (
    "yes", "yeah", "yea", "yeh", "yah", "ya", "yep", "yup", "yes please", "y", "aye",
    "sure", "sure thing", "of course", "certainly", "definitely", "absolutely", "indeed",
    "correct", "thats correct", "right", "thats right", "all right", "alright", "exactly",
    "ok", "okay", "o k", "k", "fine", "thats fine", "affirmative", "true", "please do",
    "go ahead", "go for it", "do it", "uh huh", "mhm", "mm hmm", "why not", "no problem",
    "not a problem", "no worries", "dont mind", "i dont mind", "i think so", "i guess so",
    "i do", "i did", "i am", "it is", "i have", "i will", "i would", "that is it",
    "thats it", "that will do", "sounds good", "perfect", "great", "lovely",
    "i agree", "agreed", "confirm", "confirmed",
)  # fmt: skip

_NO = (
    "no", "nope", "nah", "naw", "n", "no thanks", "no thank you", "not really", "negative",
    "wrong", "thats wrong", "incorrect", "false", "never", "not at all", "no way",
    "absolutely not", "of course not", "certainly not", "definitely not", "i dont think so",
    "not now", "not quite", "cancel", "nay",
)  # fmt: skip

_UNSURE = (
    "not sure", "im not sure", "unsure", "dont know", "i dont know", "dunno", "no idea",
    "maybe", "perhaps", "possibly", "i guess", "hang on", "hold on", "wait", "let me check",
    "not certain",
)  # fmt: skip

_NEGATORS = frozenset(
    {
        "not", "isnt", "wasnt", "arent", "aint", "doesnt", "didnt", "dont", "wont",
        "cant", "cannot", "shouldnt", "wouldnt", "havent", "hasnt", "nt",
    }
)  # fmt: skip

_EMAIL_LEAD_IN = frozenset(
    {
        "is", "its", "it", "email", "address", "my", "the", "yes", "yeah", "sure", "ok",
        "okay", "so", "thats", "that", "please", "was", "use", "try",
    }
)  # fmt: skip

ENGLISH = Words(
    units=_UNITS,
    weak_units=frozenset({"oh", "o"}),
    teens=_TEENS,
    tens=_TENS,
    hundred=frozenset({"hundred"}),
    scales={"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000},
    repeaters={"double": 2, "triple": 3, "treble": 3},
    fillers=frozenset({"um", "umm", "uh", "uhm", "er", "erm", "ah", "hmm", "mm", "eh"}),
    digit_joiners=frozenset({"and"}),
    articles=frozenset({"a", "an"}),
    minus=frozenset({"minus", "negative"}),
    point=frozenset({"point", "dot"}),
    half=frozenset({"half"}),
    quarter=frozenset({"quarter"}),
    quarters=frozenset({"quarters"}),
    currency_major=frozenset(
        {"pound", "pounds", "quid", "dollar", "dollars", "bucks", "euro", "euros", "sterling"}
    ),
    currency_minor=frozenset({"pence", "penny", "p", "cent", "cents"}),
    ordinals=_ORDINALS,
    ordinal_suffixes=frozenset({"st", "nd", "rd", "th"}),
    last=frozenset({"last", "final"}),
    position_words=frozenset({"number", "option", "choice", "press"}),
    months=_MONTHS,
    weekdays=_WEEKDAYS,
    date_connectors=frozenset({"the", "of", "on"}),
    relative_days={
        ("day", "after", "tomorrow"): 2,
        ("day", "before", "yesterday"): -2,
        ("today",): 0,
        ("tonight",): 0,
        ("tomorrow",): 1,
        ("tmrw",): 1,
        ("yesterday",): -1,
    },
    next_words=frozenset({"next", "coming"}),
    previous_words=frozenset({"last", "previous", "past"}),
    week=frozenset({"week"}),
    in_words=frozenset({"in"}),
    ago_words=frozenset({"ago"}),
    from_now=("from", "now"),
    day_units={"day": 1, "days": 1, "week": 7, "weeks": 7},
    month_units=frozenset({"month", "months"}),
    year_units=frozenset({"year", "years"}),
    fortnight=frozenset({"fortnight"}),
    noon=frozenset({"noon", "midday", "lunchtime"}),
    midnight=frozenset({"midnight"}),
    past_words=frozenset({"past", "after"}),
    to_words=frozenset({"to", "till", "til", "before", "of"}),
    minute_words=frozenset({"minute", "minutes", "mins", "min"}),
    hour_words=frozenset({"hour", "hours", "hrs"}),
    oclock=(("oclock",), ("o", "clock"), ("hundred", "hours"), ("hours",), ("hundred",)),
    am=frozenset({"am"}),
    pm=frozenset({"pm"}),
    morning=frozenset({"morning"}),
    afternoon=frozenset({"afternoon", "evening", "teatime"}),
    night=frozenset({"night", "tonight"}),
    time_anchors=frozenset({"at", "around", "about", "by", "from", "for", "after", "before"}),
    yes_phrases=_YES,
    no_phrases=_NO,
    unsure_phrases=_UNSURE,
    negators=_NEGATORS,
    plus=frozenset({"plus", "+"}),
    email_at=(("at", "sign"), ("at", "symbol"), ("at",)),
    email_symbols={
        ("dot",): ".",
        ("period",): ".",
        ("point",): ".",
        ("full", "stop"): ".",
        ("underscore",): "_",
        ("under", "score"): "_",
        ("dash",): "-",
        ("hyphen",): "-",
        ("minus",): "-",
        ("plus",): "+",
        ("dotcom",): ".com",
    },
    email_lead_in=_EMAIL_LEAD_IN,
    email_double=frozenset({"double"}),
    email_case_words=frozenset({"capital", "uppercase", "upper", "lowercase", "lower", "small"}),
    choice_negators=frozenset({"not", "dont", "doesnt", "isnt", "without", "except"}),
    choice_polite=frozenset({"please", "thanks", "thank", "you", "its", "it", "is", "the"}),
)


@dataclass(frozen=True)
class Locale:
    """Regional conventions: date order and how phone numbers are dialled."""

    code: str
    words: Words
    day_first: bool
    # None when the region has no single country, so national numbers stay bare digits.
    calling_code: str | None
    trunk_prefix: str
    intl_prefixes: tuple[str, ...]
    # Lengths of the national significant number (after the trunk prefix).
    national_lengths: tuple[int, ...]
    # Whether callers commonly give a national number without its trunk prefix (US: yes).
    bare_national_ok: bool
    keypad_yes: str = "1"
    keypad_no: str = "2"


_LOCALES: dict[str, Locale] = {
    "en-gb": Locale(
        code="en-GB",
        words=ENGLISH,
        day_first=True,
        calling_code="44",
        trunk_prefix="0",
        intl_prefixes=("00",),
        national_lengths=(9, 10),
        bare_national_ok=False,
    ),
    "en-us": Locale(
        code="en-US",
        words=ENGLISH,
        day_first=False,
        calling_code="1",
        trunk_prefix="1",
        intl_prefixes=("011",),
        national_lengths=(10,),
        bare_national_ok=True,
    ),
    # Any other English region: day-first dates (the common case outside the US) and no
    # assumed country for phone numbers.
    "en": Locale(
        code="en",
        words=ENGLISH,
        day_first=True,
        calling_code=None,
        trunk_prefix="",
        intl_prefixes=("00",),
        national_lengths=(),
        bare_national_ok=False,
    ),
}


def get_locale(language: str) -> Locale | None:
    """The locale for a BCP 47 tag such as "en-GB", falling back to its base language."""
    tag = language.strip().replace("_", "-").lower()
    found = _LOCALES.get(tag)
    if found is None:
        found = _LOCALES.get(tag.split("-", 1)[0])
    return found
