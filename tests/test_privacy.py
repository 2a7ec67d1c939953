from __future__ import annotations

import logging

from voicebot.privacy.masking import PiiFilter, mask_numbers, mask_pii, mask_value, redact


def test_mask_value_keeps_last_four_of_long_values() -> None:
    assert mask_value("4111111111111111") == "****1111"
    assert mask_value("4111 1111 1111 1111") == "****1111"
    assert mask_value("1234") == "****"
    assert mask_value(None) == "****"


def test_mask_numbers_and_emails_in_text() -> None:
    assert mask_numbers("call me on 07700 900123 ok") == "call me on ****0123 ok"
    assert mask_pii("mail sam.j@example.com about 12345678") == "mail ****@**** about ****5678"
    assert mask_numbers("in 2026 at 10") == "in 2026 at 10"


def test_redact_removes_secret_values_and_their_spelled_form() -> None:
    assert redact(
        "card 4111111111111111 or 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", ["4111111111111111"]
    ) == ("card ****1111 or ****1111")


def test_log_filter_masks_message_args_and_extra(caplog) -> None:
    logger = logging.getLogger("test.pii")
    logger.addFilter(PiiFilter())
    with caplog.at_level(logging.INFO, logger="test.pii"):
        logger.info("account %s", "12345678", extra={"caller": "+441632960001"})
    record = caplog.records[0]
    assert record.getMessage() == "account ****5678"
    assert record.caller == "+****0001"  # type: ignore[attr-defined]
