"""What callers of this bot are likely to say, taken from its flows.

A recogniser biased towards the bot's own words hears short caller phrases far better than a
general model: pocketsphinx gets a small n-gram language model built from these sentences at
start-up, and Vosk gets them as a phrase list where its model accepts a grammar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from voicebot.engine.languages import builtin_line, local_value
from voicebot.flows.schema import NEUTRAL, BotDefinition

# Keys whose string values are things a caller says: intent examples, menu and choice words.
# The bot's own prompts are left out: measured on the example bot's test lines, adding them
# raised the word error rate (0.48 -> 0.50), since callers rarely speak in prompt phrasing.
_SPOKEN_KEYS = frozenset({"examples", "say", "choices", "value"})

# What any caller may say at a collect, whatever the flows hold: answers, keypad words, digits
# and numbers, dates and times, an email address spoken aloud.
GENERIC_SENTENCES = (
    "yes",
    "no",
    "yes please",
    "no thanks",
    "no thank you",
    "yeah",
    "yep",
    "nope",
    "that's right",
    "that's correct",
    "correct",
    "that's wrong",
    "not right",
    "okay",
    "thank you",
    "thanks",
    "goodbye",
    "bye",
    "sorry",
    "pardon",
    "can you repeat that",
    "say that again",
    "i don't know",
    "agent",
    "speak to an agent",
    "a real person please",
    "operator",
    "zero one two three four five six seven eight nine",
    "oh one two three four five six seven eight nine zero",
    "nine eight seven six five four three two one zero",
    "one two three four",
    "five six seven eight",
    "double one",
    "triple two",
    "hash",
    "pound",
    "star",
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen",
    "twenty thirty forty fifty sixty seventy eighty ninety hundred thousand",
    "pounds and pence",
    "monday tuesday wednesday thursday friday saturday sunday",
    "today tomorrow yesterday next week",
    "january february march april may june july",
    "august september october november december",
    "first second third fourth fifth",
    "in the morning in the afternoon in the evening",
    "at dot com dot co dot uk",
)


def spoken_texts(definition: BotDefinition) -> list[str]:
    """Every line in the flows that a caller might say, without templates. In a bot of several
    languages, the default language's: the recogniser is that language's (docs/languages.md),
    and other languages' words in its language model only make it hear them ("en el").
    """
    found: list[str] = []
    dumped = definition.model_dump(by_alias=True, exclude_none=True)
    bot = definition.bot
    if bot.multilingual:
        tags = frozenset([*bot.spoken_languages, NEUTRAL])
        dumped = _in_language(dumped, bot.default_language, bot.default_language, tags)
    for text in _walk_keys(dumped, _SPOKEN_KEYS, inside=False, caller=True):
        cleaned = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", text)
        if cleaned.strip():
            found.append(cleaned)
    for name in definition.intents:
        found.append(name.replace("_", " "))
    return found


def sentences(definition: BotDefinition) -> list[str]:
    """The flows' lines split into sentences, plus the generic caller answers."""
    out: list[str] = []
    for text in [*spoken_texts(definition), *GENERIC_SENTENCES]:
        out.extend(part for part in re.split(r"[.!?;:\n]+", text) if part.strip())
    return out


def normalise(sentence: str, known: Iterable[str] | None = None) -> str:
    """Lower case words as a recogniser's dictionary spells them; digits become words."""
    text = sentence.lower().replace("’", "'")
    text = re.sub(r"\d", lambda m: f" {_DIGIT_WORDS[int(m.group())]} ", text)
    words = re.findall(r"[a-z]+(?:'[a-z]+)?", text)
    if known is not None:
        vocabulary = known if isinstance(known, set | frozenset) else set(known)
        words = [w for w in words if w in vocabulary]
    return " ".join(words)


_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# Keys whose values the bot speaks; a line without template markup is the same on every call.
_PROMPT_KEYS = frozenset(
    {
        "say",
        "prompt",
        "reprompt",
        "greeting",
        "anything_else",
        "announce",
        "end",
        "no_input",
        "no_match",
    }
)


def static_prompts(
    definition: BotDefinition, extra: Iterable[str] = (), *, language: str | None = None
) -> list[str]:
    """The bot's fixed lines (no ``{{ }}``): worth synthesising once, before the first call.

    Lines with template markup are left out on purpose: they carry caller data (a balance, a
    name) that must not sit in a cache. With ``language`` (a bot of several languages), only
    the lines spoken in that language: text per language gives its version and a plain line
    its translation, as the engine picks them; each voice caches its own.
    """
    seen: dict[str, None] = {}
    dumped = definition.model_dump(by_alias=True, exclude_none=True)
    if language is not None:
        tags = frozenset([*definition.bot.spoken_languages, NEUTRAL])
        dumped = _in_language(dumped, language, definition.bot.default_language, tags)
    for text in [*_walk_keys(dumped, _PROMPT_KEYS, inside=False, caller=False), *extra]:
        line = text.strip() if language is None else builtin_line(text.strip(), language)
        if line and "{{" not in line and "{%" not in line:
            seen.setdefault(line, None)
    return list(seen)


def _in_language(node: Any, language: str, default: str, tags: frozenset[str]) -> Any:
    """The dumped flows with every per-language mapping (keys all among ``tags``: the bot's
    languages and ``any``) replaced by its ``language`` value."""
    if isinstance(node, dict):
        if node and all(k in tags for k in node):
            return _in_language(local_value(node, language, default), language, default, tags)
        return {k: _in_language(v, language, default, tags) for k, v in node.items()}
    if isinstance(node, list):
        return [_in_language(item, language, default, tags) for item in node]
    return node


def _walk_keys(node: Any, keys: frozenset[str], *, inside: bool, caller: bool) -> Iterator[str]:
    """Strings under ``keys``. ``say`` means two things: a step's line (the bot speaks it) and
    a menu option's or choice's words (the caller says them); ``caller`` picks which."""
    if isinstance(node, str):
        if inside:
            yield node
    elif isinstance(node, dict):
        options = "value" in node or "key" in node or ("next" in node and "say" in node)
        for key, value in node.items():
            own = key in keys
            if key == "say" and isinstance(value, list):
                own = own and (options == caller)
            elif key == "say":
                own = own and not caller
            yield from _walk_keys(value, keys, inside=inside or own, caller=caller)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_keys(item, keys, inside=inside, caller=caller)
