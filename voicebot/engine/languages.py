"""Per-language text at run time: picking a line's version for the call's language, and the
engine's own lines (apologies, confirmations) in the languages it knows.

A flow's text is written per language by the content team (docs/languages.md); the engine's
built-in lines are kept here so a Spanish call does not hear "Sorry, I didn't get that."
Languages without a table here keep the English lines.
"""

from __future__ import annotations

from typing import Any

from voicebot.flows.schema import NEUTRAL, primary_subtag


def local_value(value: Any, language: str, default: str) -> Any:
    """``value`` itself, or (a per-language mapping) its entry for ``language``: then the
    language-neutral one, then the default language's, then the first given."""
    if not isinstance(value, dict):
        return value
    for key in (language, NEUTRAL, default):
        if key in value:
            return value[key]
    return next(iter(value.values()), None)


# English line -> {primary subtag: translation}. Keyed by the English text so every call site
# keeps its constant and the lookup is one dictionary access.
_BUILTIN: dict[str, dict[str, str]] = {
    "Sorry, I didn't get that.": {"es": "Perdone, no le he entendido."},
    "Sorry, I didn't hear anything.": {"es": "Perdone, no le he oído."},
    "Please hold while I put you through to a colleague.": {
        "es": "Un momento, por favor, le paso con un compañero."
    },
    "I'm sorry, something went wrong on our side. Let me put you through to a colleague.": {
        "es": "Lo siento, algo ha fallado por nuestra parte. Le paso con un compañero."
    },
    "I'm sorry, I don't have an answer to that.": {"es": "Lo siento, no tengo respuesta a eso."},
    "Thank you for calling. Goodbye.": {"es": "Gracias por llamar. Adiós."},
    "Sorry, I didn't get that. Could you say it another way?": {
        "es": "Perdone, no le he entendido. ¿Podría decirlo de otra manera?"
    },
    "Are you still there? How can I help you?": {"es": "¿Sigue ahí? ¿En qué puedo ayudarle?"},
    "Please say yes or no.": {"es": "Por favor, diga sí o no."},
    "Sorry about that.": {"es": "Disculpe."},
    "Please tell me in words.": {"es": "Dígamelo con palabras, por favor."},
    "What number should we call you back on?": {"es": "¿A qué número le devolvemos la llamada?"},
    "Sorry, I didn't get that. Please say or key in your phone number.": {
        "es": "Perdone, no le he entendido. Diga o marque su número de teléfono."
    },
    "Is there anything else I can help you with?": {
        "es": "¿Hay algo más en lo que pueda ayudarle?"
    },
    "How can I help you?": {"es": "¿En qué puedo ayudarle?"},
}

# Said when the caller asks for a language (bot.language_changed overrides it).
LANGUAGE_CHANGED: dict[str, str] = {
    "en": "Of course, let's continue in English.",
    "es": "Por supuesto, seguimos en español.",
    "fr": "Bien sûr, continuons en français.",
    "de": "Gern, sprechen wir Deutsch weiter.",
}


# The engine's lines that quote a value: a format string per primary subtag ("en" is the
# fallback). Values are filled in with str.format; the line is then rendered like any other.
_GENERATED: dict[str, dict[str, str]] = {
    "confirm": {
        "en": "I heard {shown}. Is that right?",
        "es": "He entendido {shown}. ¿Es correcto?",
    },
    "card_ending": {"en": "the card ending {last}", "es": "la tarjeta que termina en {last}"},
    "number_ending": {"en": "the number ending {last}", "es": "el número que termina en {last}"},
    "yes": {"en": "yes", "es": "sí"},
    "no": {"en": "no", "es": "no"},
    "callback_offer": {
        "en": "The wait is currently about {minutes} minutes. "
        "Would you like us to call you back instead?",
        "es": "Ahora mismo la espera es de unos {minutes} minutos. "
        "¿Prefiere que le devolvamos la llamada?",
    },
    "callback_offer_one": {
        "en": "The wait is currently about {minutes} minute. "
        "Would you like us to call you back instead?",
        "es": "Ahora mismo la espera es de unos {minutes} minuto. "
        "¿Prefiere que le devolvamos la llamada?",
    },
    "callback_confirmed": {
        "en": "Thank you. We'll call you back on the number ending {last} as soon as a "
        "colleague is free, and you keep your place in the queue. Goodbye.",
        "es": "Gracias. Le llamaremos al número que termina en {last} en cuanto un compañero "
        "esté libre, y conserva su lugar en la cola. Adiós.",
    },
}


def generated_line(name: str, language: str, **values: object) -> str:
    """The engine's line ``name`` in ``language`` (English when it has no version)."""
    versions = _GENERATED[name]
    return versions.get(primary_subtag(language), versions["en"]).format(**values)


def builtin_line(text: str, language: str) -> str:
    """The engine's line ``text`` in ``language`` when it has a translation, else as given."""
    return _BUILTIN.get(text, {}).get(primary_subtag(language), text)


def language_changed_line(language: str) -> str:
    return LANGUAGE_CHANGED.get(primary_subtag(language), LANGUAGE_CHANGED["en"])
