"""Tests for the offline slot parsers (voicebot.nlu.parsers)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from voicebot.nlu.parsers import (
    SLOT_TYPES,
    ErrorCode,
    ParseResult,
    SlotSpec,
    get_locale,
    luhn_valid,
    parse_keypad,
    parse_slot,
    spoken_digits,
    words_to_number,
)

# A Wednesday, mid-morning.
NOW = datetime(2025, 6, 11, 10, 0)

GB = "en-GB"
US = "en-US"


def parse(type_: str, text: str, language: str = GB, /, **options: object) -> ParseResult:
    spec = SlotSpec(type=type_, language=language, **options)  # type: ignore[arg-type]
    return parse_slot(spec, text, now=NOW)


def keyed(type_: str, keys: str, language: str = GB, /, **options: object) -> ParseResult:
    spec = SlotSpec(type=type_, language=language, **options)  # type: ignore[arg-type]
    return parse_keypad(spec, keys)


def assert_value(result: ParseResult, expected: object) -> None:
    assert result.ok, result
    assert result.error is None
    assert result.value == expected
    assert type(result.value) is type(expected)


def assert_error(result: ParseResult, error: str) -> None:
    assert not result.ok
    assert result.value is None
    assert result.error == error


# --- spoken_digits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("four two one", "421"),
        ("double four oh seven", "4407"),
        ("triple 2", "222"),
        ("treble five", "555"),
        ("42 1", "421"),
        ("1234-5678", "12345678"),
        ("zero zero seven", "007"),
        ("nought one two", "012"),
        ("o one six three two", "01632"),
        ("oh four", "04"),
        ("forty two seventeen", "4217"),
        ("one eight hundred", "1800"),
        ("eight hundred and five", "805"),
        ("nineteen ninety", "1990"),
        ("um four uh two", "42"),
        ("four two and one", "421"),
        ("niner niner", "99"),
        ("double oh", "00"),
        ("Four Two One", "421"),
        ("１２３", "123"),
    ],
)
def test_spoken_digits(text: str, expected: str) -> None:
    assert spoken_digits(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "oh", "o", "hello", "my number is four two", "four two and", "+44", "double", "🙂"],
)
def test_spoken_digits_rejects_non_digit_strings(text: str) -> None:
    assert spoken_digits(text) is None


# --- words_to_number -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("forty two", 42),
        ("one hundred and five", 105),
        ("one hundred five", 105),
        ("a hundred", 100),
        ("two thousand three hundred", 2300),
        ("two thousand and five", 2005),
        ("twelve hundred", 1200),
        ("one million two hundred thousand", 1_200_000),
        ("three million", 3_000_000),
        ("a thousand", 1000),
        ("zero", 0),
        ("seven", 7),
        ("twelve fifty", 1250),
        ("nineteen ninety", 1990),
        ("twenty oh five", 2005),
        ("one two three", 123),
        ("four oh four", 404),
        ("42", 42),
        ("1,234", 1234),
        ("1,234,567", 1234567),
        ("-4", -4),
        ("minus four", -4),
        ("negative twelve", -12),
        ("5k", 5000),
        ("3 hundred", 300),
        ("3.5", 3.5),
        ("three point five", 3.5),
        ("three point one four", 3.14),
        ("point five", 0.5),
        ("zero point two five", 0.25),
        ("minus two point five", -2.5),
        ("1.5 million", 1_500_000),
        ("half", 0.5),
        ("a half", 0.5),
        ("one and a half", 1.5),
        ("two and a quarter", 2.25),
        ("three quarters", 0.75),
        ("forty two pounds fifty", 42.5),
        ("forty two pounds and fifty pence", 42.5),
        ("42 dollars and 5 cents", 42.05),
        ("twelve fifty pounds", 12.5),
        ("forty two pounds", 42),
        ("fifty pence", 0.5),
        ("£42.50", 42.5),
        ("$100", 100),
        ("um forty uh two", 42),
    ],
)
def test_words_to_number(text: str, expected: float) -> None:
    value = words_to_number(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "text", ["", "hello", "it's 42", "oh", "a", "and", "forty two point", "hundred hundred", "🙂"]
)
def test_words_to_number_rejects(text: str) -> None:
    assert words_to_number(text) is None


# --- digits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("four two one", {}, "421"),
        ("my account number is one two three four five six seven eight", {"length": 8}, "12345678"),
        ("it's 1234 5678 thanks", {"length": 8}, "12345678"),
        ("double four oh seven", {"length": 4}, "4407"),
        ("zero zero one", {"length": 3}, "001"),
        ("oh one two three", {"min_length": 3, "max_length": 6}, "0123"),
        ("um it's four uh two one", {}, "421"),
        ("1234-5678", {}, "12345678"),
        # "oh, four two one": the "oh" is an interjection when only the rest fits.
        ("oh four two one", {"length": 3}, "421"),
        ("my pin is 0042", {"length": 4}, "0042"),
        # Said in two pieces that only fit together.
        ("four two one sorry five six", {"length": 5}, "42156"),
    ],
)
def test_digits(text: str, options: dict[str, int], expected: str) -> None:
    assert_value(parse("digits", text, **options), expected)


@pytest.mark.parametrize(
    ("text", "options", "error"),
    [
        ("four two one", {"length": 8}, "wrong_length"),
        ("four two", {"min_length": 3}, "wrong_length"),
        ("one two three four", {"max_length": 3}, "wrong_length"),
        ("I don't know it", {}, "no_match"),
        ("oh", {}, "no_match"),
        ("", {}, "empty"),
        ("four two one or maybe four two two", {"length": 3}, "ambiguous"),
    ],
)
def test_digits_failures(text: str, options: dict[str, int], error: str) -> None:
    assert_error(parse("digits", text, **options), error)


@pytest.mark.parametrize(
    ("keys", "options", "expected", "error"),
    [
        ("12345678", {"length": 8}, "12345678", None),
        ("0042", {}, "0042", None),
        ("1234", {"length": 8}, None, "wrong_length"),
        ("12*4", {}, None, "invalid_key"),
        ("", {}, None, "empty"),
        ("12a4", {}, None, "invalid_key"),
    ],
)
def test_digits_keypad(
    keys: str, options: dict[str, int], expected: str | None, error: str | None
) -> None:
    result = keyed("digits", keys, **options)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- number ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("it's 42", 42),
        ("about forty two I think", 42),
        ("I'd like to pay forty two pounds fifty please", 42.5),
        ("one hundred and twenty", 120),
        ("three point five", 3.5),
        ("a hundred please", 100),
        ("minus four", -4),
        ("um two thousand", 2000),
        ("fifty pence", 0.5),
        ("one two three", 123),
    ],
)
def test_number(text: str, expected: float) -> None:
    assert_value(parse("number", text), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("no idea", "no_match"),
        ("forty two or maybe forty three", "ambiguous"),
        ("   ", "empty"),
    ],
)
def test_number_failures(text: str, error: str) -> None:
    assert_error(parse("number", text), error)


@pytest.mark.parametrize(
    ("keys", "expected", "error"),
    [
        ("42", 42, None),
        ("007", 7, None),
        ("42*50", 42.5, None),
        ("4*2*1", None, "invalid_key"),
        ("#", None, "invalid_key"),
    ],
)
def test_number_keypad(keys: str, expected: float | None, error: str | None) -> None:
    result = keyed("number", keys)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- yes_no ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "Yes.",
        "yeah",
        "yep",
        "yup",
        "sure",
        "correct",
        "that's right",
        "that’s correct",
        "right",
        "ok",
        "okay",
        "absolutely",
        "please do",
        "go ahead",
        "affirmative",
        "yes please",
        "of course",
        "uh huh",
        "mm hmm",
        "I think so",
        "yes it is",
        "sure why not",
        "no problem",
        "that's not wrong",
        "no sorry yes",
        "y",
        "aye",
    ],
)
def test_yes(text: str) -> None:
    assert_value(parse("yes_no", text), True)


@pytest.mark.parametrize(
    "text",
    [
        "no",
        "No!",
        "nope",
        "nah",
        "not really",
        "negative",
        "that's wrong",
        "incorrect",
        "don't",
        "no that's not right",
        "not correct",
        "that is not correct",
        "that isn't right",
        "I don't think so",
        "no thank you",
        "absolutely not",
        "of course not",
        "it is not",
        "yeah no",
        "don't go ahead",
        "I don't",
        "n",
    ],
)
def test_no(text: str) -> None:
    assert_value(parse("yes_no", text), False)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("I'm not sure", "unsure"),
        ("I don't know", "unsure"),
        ("maybe", "unsure"),
        ("yes, actually hang on", "unsure"),
        ("what's the weather like", "no_match"),
        ("🙂", "no_match"),
    ],
)
def test_yes_no_failures(text: str, error: str) -> None:
    assert_error(parse("yes_no", text), error)


@pytest.mark.parametrize(
    ("keys", "expected", "error"),
    [
        ("1", True, None),
        ("2", False, None),
        ("3", None, "invalid_key"),
        ("12", None, "invalid_key"),
    ],
)
def test_yes_no_keypad(keys: str, expected: bool | None, error: str | None) -> None:
    result = keyed("yes_no", keys)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- date ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", "2025-06-11"),
        ("tomorrow", "2025-06-12"),
        ("yesterday", "2025-06-10"),
        ("the day after tomorrow", "2025-06-13"),
        ("next monday", "2025-06-16"),
        ("on friday", "2025-06-13"),
        ("this wednesday", "2025-06-11"),
        ("next wednesday", "2025-06-18"),
        ("last friday", "2025-06-06"),
        ("monday next week", "2025-06-16"),
        ("in three days", "2025-06-14"),
        ("two weeks ago", "2025-05-28"),
        ("in a fortnight", "2025-06-25"),
        ("in a month", "2025-07-11"),
        ("the third of march", "2025-03-03"),
        ("march 3rd", "2025-03-03"),
        ("march the third", "2025-03-03"),
        ("3 march 1990", "1990-03-03"),
        ("march 3 1990", "1990-03-03"),
        ("1990-04-03", "1990-04-03"),
        ("3/4/1990", "1990-04-03"),
        ("03.04.90", "1990-04-03"),
        ("25/12/1990", "1990-12-25"),
        ("fourth of july nineteen eighty two", "1982-07-04"),
        ("july fourth nineteen eighty two", "1982-07-04"),
        ("the 4th of july 82", "1982-07-04"),
        ("twenty first of june two thousand and five", "2005-06-21"),
        ("march twenty one nineteen ninety", "1990-03-21"),
        ("my date of birth is the twelfth of may nineteen ninety nine", "1999-05-12"),
        ("june the 3rd twenty twenty six", "2026-06-03"),
        ("may I book it for the third of june", "2025-06-03"),
        ("on the fifth", "2025-07-05"),
        ("the thirtieth", "2025-06-30"),
        ("the first", "2025-07-01"),
        ("monday the sixteenth", "2025-06-16"),
        ("nineteenth of february nineteen oh five", "1905-02-19"),
    ],
)
def test_date_en_gb(text: str, expected: str) -> None:
    assert_value(parse("date", text, GB), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3/4/1990", "1990-03-04"),
        ("12/25/1990", "1990-12-25"),
        # Only one reading is a real date, whichever order the region prefers.
        ("25/12/1990", "1990-12-25"),
        ("july 4th 1982", "1982-07-04"),
        ("4/3", "2025-04-03"),
    ],
)
def test_date_en_us(text: str, expected: str) -> None:
    assert_value(parse("date", text, US), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("the thirty first of february", "invalid_date"),
        ("march nineteen ninety", "incomplete_date"),
        ("march twenty nineteen", "incomplete_date"),
        ("whenever suits you", "no_match"),
        ("nineteen ninety", "no_match"),
        ("31/02/2020", "invalid_date"),
    ],
)
def test_date_failures(text: str, error: str) -> None:
    assert_error(parse("date", text), error)


@pytest.mark.parametrize(
    ("keys", "language", "expected", "error"),
    [
        ("03041990", GB, "1990-04-03", None),
        ("03041990", US, "1990-03-04", None),
        ("25121990", GB, "1990-12-25", None),
        ("25121990", US, None, "invalid_date"),
        ("0304199", GB, None, "wrong_length"),
        ("0304*990", GB, None, "invalid_key"),
    ],
)
def test_date_keypad(keys: str, language: str, expected: str | None, error: str | None) -> None:
    result = keyed("date", keys, language)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3pm", "15:00"),
        ("3 pm", "15:00"),
        ("3 p.m.", "15:00"),
        ("three p m", "15:00"),
        ("three thirty", "03:30"),
        ("three thirty pm", "15:30"),
        ("three oh five", "03:05"),
        ("seven forty five in the evening", "19:45"),
        ("half past three", "03:30"),
        ("half past three in the afternoon", "15:30"),
        ("half three", "03:30"),
        ("quarter to four", "03:45"),
        ("a quarter past nine", "09:15"),
        ("twenty five to six", "05:35"),
        ("ten minutes past eight", "08:10"),
        ("ten to midnight", "23:50"),
        ("15:30", "15:30"),
        ("3.30pm", "15:30"),
        ("10:30 am", "10:30"),
        ("12 am", "00:00"),
        ("12 pm", "12:00"),
        ("noon", "12:00"),
        ("twelve noon", "12:00"),
        ("midday", "12:00"),
        ("midnight", "00:00"),
        ("nine in the morning", "09:00"),
        ("eight in the evening", "20:00"),
        ("eleven at night", "23:00"),
        ("tomorrow afternoon at three", "15:00"),
        ("three o'clock", "03:00"),
        ("fifteen hundred", "15:00"),
        ("oh nine hundred hours", "09:00"),
        ("twenty thirty", "20:30"),
        ("1530", "15:30"),
        ("can you call me back at three thirty pm please", "15:30"),
        ("on the 3rd at 4 pm", "16:00"),
        ("I am free around five", "05:00"),
        ("in ten minutes", "10:10"),
        ("in half an hour", "10:30"),
        ("in an hour", "11:00"),
    ],
)
def test_time(text: str, expected: str) -> None:
    assert_value(parse("time", text), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [("13 am", "invalid_time"), ("25:00", "invalid_time"), ("whenever", "no_match")],
)
def test_time_failures(text: str, error: str) -> None:
    assert_error(parse("time", text), error)


@pytest.mark.parametrize(
    ("keys", "expected", "error"),
    [
        ("1530", "15:30", None),
        ("0900", "09:00", None),
        ("930", "09:30", None),
        ("2460", None, "invalid_time"),
        ("15", None, "wrong_length"),
        ("15*30", None, "invalid_key"),
    ],
)
def test_time_keypad(keys: str, expected: str | None, error: str | None) -> None:
    result = keyed("time", keys)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- phone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("+44 1632 960001", GB, "+441632960001"),
        ("oh one six three two nine six oh oh oh one", GB, "+441632960001"),
        ("plus four four one six three two nine six oh oh oh one", GB, "+441632960001"),
        ("my number is 07700 900123 thanks", GB, "+447700900123"),
        ("oh seven seven double oh nine hundred one two three", GB, "+447700900123"),
        ("0044 1632 960001", GB, "+441632960001"),
        ("44 1632 960001", GB, "+441632960001"),
        # No trunk prefix in en-GB: the country cannot be assumed.
        ("1632 960001", GB, "1632960001"),
        ("(415) 555-0132", US, "+14155550132"),
        ("four one five five five five oh one three two", US, "+14155550132"),
        ("one eight hundred five five five one two one two", US, "+18005551212"),
        ("+1 415 555 0132", US, "+14155550132"),
        ("011 44 1632 960001", US, "+441632960001"),
        ("555 0132", US, "5550132"),
        ("+44 1632 960001", "en-AU", "+441632960001"),
        ("01632 960001", "en-AU", "01632960001"),
    ],
)
def test_phone(text: str, language: str, expected: str) -> None:
    assert_value(parse("phone", text, language), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("one two three", "wrong_length"),
        ("1234 5678 9012 3456", "wrong_length"),
        ("I'd rather not say", "no_match"),
        ("01632 960001 or 01632 960002", "ambiguous"),
    ],
)
def test_phone_failures(text: str, error: str) -> None:
    assert_error(parse("phone", text), error)


@pytest.mark.parametrize(
    ("keys", "language", "expected", "error"),
    [
        ("01632960001", GB, "+441632960001", None),
        ("4155550132", US, "+14155550132", None),
        ("12345", GB, None, "wrong_length"),
        ("*1632960001", GB, None, "invalid_key"),
    ],
)
def test_phone_keypad(keys: str, language: str, expected: str | None, error: str | None) -> None:
    result = keyed("phone", keys, language)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- email -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("john dot smith at example dot com", "john.smith@example.com"),
        ("j smith underscore 1 at gmail dot com", "jsmith_1@gmail.com"),
        ("j smith underscore one at gmail dot com", "jsmith_1@gmail.com"),
        ("j o h n at gmail dot com", "john@gmail.com"),
        ("my email is John.Smith@Example.com thanks", "john.smith@example.com"),
        ("John.Smith@Example.COM.", "john.smith@example.com"),
        (
            "my e-mail address is mary dash jane at my hyphen site dot co dot uk please",
            "mary-jane@my-site.co.uk",
        ),
        ("john at gmail.com", "john@gmail.com"),
        ("a double n a at example dot com", "anna@example.com"),
        ("bob twenty three at hotmail dot co dot uk", "bob23@hotmail.co.uk"),
        ("my email at work is j at acme dot com", "j@acme.com"),
        ("sales at three dot co dot uk", "sales@three.co.uk"),
        ("yes it's info at acme dotcom", "info@acme.com"),
        ("capital j smith at example dot com", "jsmith@example.com"),
        ("jane plus news at example dot org", "jane+news@example.org"),
        ("it's jane at sign example dot org", "jane@example.org"),
    ],
)
def test_email(text: str, expected: str) -> None:
    assert_value(parse("email", text), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("john at gmail", "invalid_email"),
        ("at example dot com", "invalid_email"),
        ("john smith", "no_match"),
        ("john@@example.com", "invalid_email"),
    ],
)
def test_email_failures(text: str, error: str) -> None:
    assert_error(parse("email", text), error)


def test_email_keypad_is_unsupported() -> None:
    assert_error(keyed("email", "123"), "keypad_unsupported")


# --- choice ----------------------------------------------------------------------------------

CHOICES = ("Billing", "Technical support", "Sales", "Credit card", "Card")
SYNONYMS = {
    "Billing": ("a bill", "payment"),
    "technical support": ("fault", "broken", "not working"),
    "Sales": "buy",  # a single string in YAML is one synonym
}


def choose(text: str) -> ParseResult:
    return parse("choice", text, choices=CHOICES, choice_synonyms=SYNONYMS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("billing", "Billing"),
        ("BILLING please", "Billing"),
        ("I want to pay a bill", "Billing"),
        ("I'd like to make a payment", "Billing"),
        ("my broadband is broken", "Technical support"),
        ("my internet is not working", "Technical support"),
        ("I want to buy something", "Sales"),
        ("credit card", "Credit card"),
        ("card", "Card"),
        ("the first one", "Billing"),
        ("second", "Technical support"),
        ("the third one please", "Sales"),
        ("the last one", "Card"),
        ("option 3", "Sales"),
        ("number two", "Technical support"),
        ("two", "Technical support"),
        ("2 please", "Technical support"),
        ("biling", "Billing"),
        ("techincal support", "Technical support"),
        ("sails", "Sales"),
        ("not billing, sales", "Sales"),
        ("billing not sales", "Billing"),
        ("um billing", "Billing"),
    ],
)
def test_choice(text: str, expected: str) -> None:
    assert_value(choose(text), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("billing or sales", "ambiguous"),
        ("the first or the second", "ambiguous"),
        ("the seventh one", "out_of_range"),
        ("number nine", "out_of_range"),
        ("something else entirely", "no_match"),
        ("not billing", "no_match"),
        ("🙂🙂", "no_match"),
    ],
)
def test_choice_failures(text: str, error: str) -> None:
    assert_error(choose(text), error)


def test_choice_without_choices() -> None:
    assert_error(parse("choice", "billing"), "no_choices")
    assert_error(keyed("choice", "1"), "no_choices")


def test_choice_fuzzy_margin() -> None:
    # 94 against 89: too close to call, so the bot asks again.
    assert_error(parse("choice", "cancelin", choices=("canceling", "cancelling")), "ambiguous")
    # 89 against 80: clear enough.
    assert_value(parse("choice", "colr", choices=("colour", "color")), "color")
    # 75 is below the cutoff.
    assert_error(parse("choice", "cart", choices=("card", "shop")), "no_match")


@pytest.mark.parametrize(
    ("keys", "expected", "error"),
    [
        ("1", "Billing", None),
        ("5", "Card", None),
        ("6", None, "out_of_range"),
        ("0", None, "out_of_range"),
        ("*", None, "invalid_key"),
    ],
)
def test_choice_keypad(keys: str, expected: str | None, error: str | None) -> None:
    result = keyed("choice", keys, choices=CHOICES)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


# --- card_number -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111", "4111111111111111"),
        ("4111-1111-1111-1111", "4111111111111111"),
        ("four one one one one one one one one one one one one one one one", "4111111111111111"),
        ("forty one eleven eleven eleven eleven eleven eleven eleven", "4111111111111111"),
        ("my card number is 5555 5555 5555 4444", "5555555555554444"),
        ("378282246310005", "378282246310005"),
        ("4222222222222", "4222222222222"),
        (
            "four one one one, um, one one one one, one one one one, one one one one",
            "4111111111111111",
        ),
    ],
)
def test_card_number(text: str, expected: str) -> None:
    assert_value(parse("card_number", text), expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("4111 1111 1111 1112", "luhn"),
        ("4111 1111", "wrong_length"),
        ("4111 1111 1111 1111 1111", "wrong_length"),
        ("I don't have it", "no_match"),
    ],
)
def test_card_number_failures(text: str, error: str) -> None:
    assert_error(parse("card_number", text), error)


@pytest.mark.parametrize(
    ("keys", "expected", "error"),
    [
        ("4111111111111111", "4111111111111111", None),
        ("4111111111111112", None, "luhn"),
        ("411111111111", None, "wrong_length"),
        ("4111*11111111111", None, "invalid_key"),
    ],
)
def test_card_number_keypad(keys: str, expected: str | None, error: str | None) -> None:
    result = keyed("card_number", keys)
    if error is None:
        assert_value(result, expected)
    else:
        assert_error(result, error)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("79927398713", True), ("79927398710", False), ("0", True)],
)
def test_luhn_valid(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  my router keeps dropping  ", "my router keeps dropping"),
        ("Café 🙂", "Café 🙂"),
        ("42", "42"),
    ],
)
def test_text(text: str, expected: str) -> None:
    assert_value(parse("text", text), expected)


def test_text_failures() -> None:
    assert_error(parse("text", "   \n"), "empty")
    assert_error(parse("text", "a" * 20_000), "too_long")
    assert_value(keyed("text", "1234"), "1234")


# --- specs, languages and robustness ---------------------------------------------------------


def test_unknown_type_and_language() -> None:
    assert_error(parse("colour", "red"), "unknown_type")
    assert_error(keyed("colour", "1"), "unknown_type")
    assert_error(parse("digits", "four two", "fr-FR"), "unsupported_language")


@pytest.mark.parametrize(
    ("language", "code"),
    [("en-GB", "en-GB"), ("en_gb", "en-GB"), ("EN-US", "en-US"), ("en-AU", "en"), ("en", "en")],
)
def test_get_locale(language: str, code: str) -> None:
    locale = get_locale(language)
    assert locale is not None
    assert locale.code == code


def test_generic_english_is_day_first() -> None:
    assert_value(parse("date", "3/4/1990", "en-IE"), "1990-04-03")


def test_error_codes_are_plain_strings() -> None:
    result = parse("digits", "nothing here")
    assert result.error == ErrorCode.NO_MATCH
    assert str(ErrorCode.NO_MATCH) == "no_match"
    assert type(result.error) is str


def test_default_now_is_used() -> None:
    result = parse_slot(SlotSpec(type="date"), "today")
    assert result.ok
    assert result.value == datetime.now().date().isoformat()


WEIRD_INPUTS = [
    "",
    " ",
    "\x00\x01",
    "🙂🙂🙂",
    "١٢٣",
    "²³",
    "Ωμέγα",
    "a" * 1000,
    "four " * 200,
    "and and and a a a point point",
    "double double double",
    "@@@ at at dot dot",
    "+++ plus plus",
    "- - - / / / : : :",
    "9" * 1000,
    "12/34/5678 99:99 31/31/31",
    "minus minus point half quarter quarters",
    "the of on the of",
    "not not not not",
    "half past half to quarter",
    "x" * 5000,
]


@pytest.mark.parametrize("type_", sorted(SLOT_TYPES))
@pytest.mark.parametrize("text", WEIRD_INPUTS)
def test_never_raises_on_weird_speech(type_: str, text: str) -> None:
    result = parse(type_, text, choices=CHOICES)
    assert isinstance(result, ParseResult)
    assert result.error != "internal_error"
    assert result.ok or result.error


@pytest.mark.parametrize("type_", sorted(SLOT_TYPES))
@pytest.mark.parametrize("keys", ["", "#", "*", "**##", "0", "1" * 65, "12ab", "🙂", " 12 "])
def test_never_raises_on_weird_keys(type_: str, keys: str) -> None:
    result = keyed(type_, keys, choices=CHOICES)
    assert result.error != "internal_error"


@pytest.mark.parametrize("type_", sorted(SLOT_TYPES))
def test_rejects_non_string_input(type_: str) -> None:
    spec = SlotSpec(type=type_, choices=CHOICES)
    assert_error(parse_slot(spec, None), "invalid_input")  # type: ignore[arg-type]
    assert_error(parse_keypad(spec, 42), "invalid_input")  # type: ignore[arg-type]


def test_slot_spec_is_hashable() -> None:
    spec = SlotSpec(type="choice", choices=CHOICES, choice_synonyms=SYNONYMS)  # type: ignore[arg-type]
    assert hash(spec) == hash(SlotSpec(type="choice", choices=CHOICES))


def test_huge_numbers_are_not_amounts() -> None:
    assert_error(parse("number", "9" * 500 + " pounds fifty"), "no_match")
    assert words_to_number("1" * 19) is None


def test_too_long_speech() -> None:
    assert_error(parse("digits", "1" * 1001), "too_long")


def test_parsers_are_fast() -> None:
    # They run on every caller turn; a long, messy turn must stay well under a millisecond or so.
    text = "um so my number is oh seven seven double oh nine hundred one two three " * 10
    started = time.perf_counter()
    for type_ in SLOT_TYPES:
        for _ in range(20):
            parse(type_, text[:1000], choices=CHOICES)
    per_call = (time.perf_counter() - started) / (20 * len(SLOT_TYPES))
    assert per_call < 0.01
