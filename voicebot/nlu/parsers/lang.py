"""Per-language word tables and per-region conventions for the slot parsers.

A language is a `Words` table (what callers say) and a region is a `Locale` (how they write
dates and dial numbers). Adding a language means adding one `Words` table and its `Locale`
entries here; the parsers only read these tables. English and Spanish exist; Spanish covers
yes/no, numbers and digit strings (docs/languages.md), its date and time words are a start.
Words are written without accents: the tokenizer folds "sí" to "si" and "mañana" to "manana".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ENGLISH", "SPANISH", "Locale", "Words", "get_locale"]


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
    # One word standing for several, read as those (numbers only): "doscientos" is "dos ciento".
    compounds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Scale words that mean one of themselves with no number before them: "mil" is 1000.
    bare_scales: frozenset[str] = frozenset()


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


# Spanish, without accents (the tokenizer folds them). "y" is a filler: "treinta y dos" is read
# as "treinta dos", which the number readers already know as 32.
_ES_UNITS = {
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
    "seis": 6, "siete": 7, "ocho": 8, "nueve": 9,
}  # fmt: skip
# 10-29 are one word each in Spanish ("veintidos"), read as a single value like English teens.
_ES_TEENS = {
    "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
    "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19,
    "veintiuno": 21, "veintiun": 21, "veintiuna": 21, "veintidos": 22, "veintitres": 23,
    "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27,
    "veintiocho": 28, "veintinueve": 29,
}  # fmt: skip
_ES_TENS = {
    "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50,
    "sesenta": 60, "setenta": 70, "ochenta": 80, "noventa": 90,
}  # fmt: skip
_ES_HUNDREDS = {
    "doscientos": "dos", "trescientos": "tres", "cuatrocientos": "cuatro",
    "quinientos": "cinco", "seiscientos": "seis", "setecientos": "siete",
    "ochocientos": "ocho", "novecientos": "nueve",
}  # fmt: skip
_ES_COMPOUNDS = {
    **{word: (unit, "ciento") for word, unit in _ES_HUNDREDS.items()},
    **{word[:-2] + "as": (unit, "ciento") for word, unit in _ES_HUNDREDS.items()},
}
_ES_ORDINALS = {
    "primero": 1, "primer": 1, "primera": 1, "segundo": 2, "segunda": 2, "tercero": 3,
    "tercer": 3, "tercera": 3, "cuarta": 4, "quinto": 5, "quinta": 5, "sexto": 6, "sexta": 6,
    "septimo": 7, "septima": 7, "octavo": 8, "octava": 8, "noveno": 9, "novena": 9,
    "decimo": 10, "decima": 10,
}  # fmt: skip
_ES_MONTHS = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12,
}  # fmt: skip
_ES_WEEKDAYS = {
    "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5,
    "domingo": 6,
}  # fmt: skip

_ES_YES = (
    "si", "si si", "si por favor", "si claro", "claro", "claro que si", "vale", "vale vale",
    "de acuerdo", "correcto", "es correcto", "eso es", "exacto", "exactamente", "por supuesto",
    "desde luego", "perfecto", "bien", "muy bien", "esta bien", "afirmativo", "efectivamente",
    "asi es", "cierto", "adelante", "venga", "dale", "ok", "okay", "sin problema",
    "como no", "confirmo", "confirmado", "eso mismo", "justo", "sale",
)  # fmt: skip

_ES_NO = (
    "no", "no gracias", "no es correcto", "no esta bien", "eso no", "claro que no",
    "por supuesto que no", "para nada", "de ninguna manera", "en absoluto", "incorrecto",
    "negativo", "nunca", "jamas", "ni hablar", "mal", "cancelar", "tampoco", "no es eso",
)  # fmt: skip

_ES_UNSURE = (
    "no se", "no lo se", "no estoy seguro", "no estoy segura", "quizas", "quiza", "tal vez",
    "a lo mejor", "puede ser", "espere", "un momento", "ni idea", "depende", "no sabria decir",
)  # fmt: skip

SPANISH = Words(
    units=_ES_UNITS,
    weak_units=frozenset(),
    teens=_ES_TEENS,
    tens=_ES_TENS,
    hundred=frozenset({"cien", "ciento"}),
    scales={"mil": 1_000, "millon": 1_000_000, "millones": 1_000_000},
    repeaters={"doble": 2, "triple": 3},
    fillers=frozenset({"eh", "em", "mm", "hmm", "ah", "pues", "este", "y"}),
    digit_joiners=frozenset(),
    # "un" is a number only in "un millon"; alone it is "a"
    articles=frozenset({"un", "una"}),
    minus=frozenset({"menos"}),
    point=frozenset({"coma", "punto"}),
    half=frozenset({"medio", "media"}),
    quarter=frozenset({"cuarto"}),
    quarters=frozenset({"cuartos"}),
    currency_major=frozenset({"euro", "euros", "libra", "libras", "dolar", "dolares"}),
    currency_minor=frozenset({"centimo", "centimos", "penique", "peniques", "centavo", "centavos"}),
    ordinals=_ES_ORDINALS,
    ordinal_suffixes=frozenset({"o", "a", "er"}),
    last=frozenset({"ultimo", "ultima"}),
    position_words=frozenset({"numero", "opcion", "pulse", "pulsar"}),
    months=_ES_MONTHS,
    weekdays=_ES_WEEKDAYS,
    date_connectors=frozenset({"el", "de", "del"}),
    relative_days={
        ("pasado", "manana"): 2,
        ("antes", "de", "ayer"): -2,
        ("anteayer",): -2,
        ("hoy",): 0,
        ("esta", "noche"): 0,
        ("manana",): 1,
        ("ayer",): -1,
    },
    next_words=frozenset({"proximo", "proxima", "siguiente"}),
    previous_words=frozenset({"pasado", "pasada", "anterior"}),
    week=frozenset({"semana"}),
    in_words=frozenset({"en"}),
    ago_words=frozenset(),
    from_now=("desde", "hoy"),
    day_units={"dia": 1, "dias": 1, "semana": 7, "semanas": 7},
    month_units=frozenset({"mes", "meses"}),
    year_units=frozenset({"ano", "anos"}),
    fortnight=frozenset({"quincena"}),
    noon=frozenset({"mediodia"}),
    midnight=frozenset({"medianoche"}),
    past_words=frozenset(),
    to_words=frozenset({"menos"}),
    minute_words=frozenset({"minuto", "minutos"}),
    hour_words=frozenset({"hora", "horas"}),
    oclock=(("en", "punto"),),
    am=frozenset({"am"}),
    pm=frozenset({"pm"}),
    morning=frozenset({"madrugada"}),
    afternoon=frozenset({"tarde"}),
    night=frozenset({"noche"}),
    time_anchors=frozenset({"a", "las", "la", "sobre", "hacia", "para", "desde", "antes"}),
    yes_phrases=_ES_YES,
    no_phrases=_ES_NO,
    unsure_phrases=_ES_UNSURE,
    negators=frozenset({"ni"}),
    plus=frozenset({"mas", "+"}),
    email_at=(("arroba",),),
    email_symbols={
        ("punto",): ".",
        ("guion", "bajo"): "_",
        ("barra", "baja"): "_",
        ("guion",): "-",
        ("mas",): "+",
        ("puntocom",): ".com",
    },
    email_lead_in=frozenset(
        {"es", "mi", "el", "correo", "email", "direccion", "si", "vale", "pues", "seria"}
    ),
    email_double=frozenset({"doble"}),
    email_case_words=frozenset({"mayuscula", "minuscula"}),
    choice_negators=frozenset({"no", "sin", "excepto", "menos"}),
    choice_polite=frozenset({"por", "favor", "gracias", "el", "la", "es", "seria"}),
    compounds=_ES_COMPOUNDS,
    bare_scales=frozenset({"mil"}),
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
    "es-es": Locale(
        code="es-ES",
        words=SPANISH,
        day_first=True,
        calling_code="34",
        trunk_prefix="",  # Spain has none: national numbers are the nine digits
        intl_prefixes=("00",),
        national_lengths=(9,),
        bare_national_ok=True,
    ),
    # Any other Spanish region: no assumed country for phone numbers.
    "es": Locale(
        code="es",
        words=SPANISH,
        day_first=True,
        calling_code=None,
        trunk_prefix="",
        intl_prefixes=("00",),
        national_lengths=(),
        bare_national_ok=False,
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
