"""Text normalisation for speech: what a reply says, written the way it is spoken.

``normalise_for_speech("It costs $3.50 (approx. 10% off).")`` →
"It costs three dollars and fifty cents (approximately ten percent off)."

Pure functions over strings, so they are tested without a model. The English rules run for
voices whose language is English; other voices get the language-neutral clean-up only.
"""

from __future__ import annotations

import unicodedata

from services.tts.normalisation import numbers, symbols
from services.tts.normalisation.cleanup import (
    CODE_BLOCK_PHRASE,
    collapse_whitespace,
    remove_control_characters,
    strip_emoji,
    strip_markdown,
)

__all__ = ["CODE_BLOCK_PHRASE", "normalise_for_speech", "remove_control_characters"]

# The order matters: addresses and code before anything reads their dots and digits; dates and
# times before their digits are read as plain numbers; money, percentages and units before
# plain numbers; maths before the symbols left over.
_ENGLISH_STEPS = (
    symbols.expand_code_spans,
    symbols.expand_web_addresses,
    numbers.expand_dates,
    numbers.expand_times,
    numbers.expand_currency,
    numbers.expand_percentages,
    numbers.expand_units,
    numbers.expand_ordinals,
    symbols.expand_abbreviations,
    symbols.expand_math,
    numbers.expand_numbers,
    symbols.expand_symbols,
)


def normalise_for_speech(text: str, language: str = "en") -> str:
    """Rewrite ``text`` so a speech engine says what a person reading it would say."""
    text = unicodedata.normalize("NFC", remove_control_characters(text))
    text = strip_emoji(strip_markdown(text))
    if language.lower().startswith("en"):
        for step in _ENGLISH_STEPS:
            text = step(text)
    else:
        text = text.replace("`", "")
    return collapse_whitespace(text)
