"""Text normalisation for speech: each rule, and whole replies mixing them."""

import pytest

from services.tts.normalisation import CODE_BLOCK_PHRASE, normalise_for_speech, remove_control_characters
from services.tts.normalisation.numbers import cardinal, fraction, money, ordinal, year


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (42, "forty-two"),
        (105, "one hundred five"),
        (1234, "one thousand two hundred thirty-four"),
        (1_000_000, "one million"),
        (-5, "minus five"),
        (
            10**20,
            "one zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero",
        ),
    ],
)
def test_cardinals_are_american_english(value: int, words: str) -> None:
    assert cardinal(value) == words


def test_ordinals_years_fractions_and_money() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 11, 22, 101)] == [
        "first",
        "second",
        "third",
        "eleventh",
        "twenty-second",
        "one hundred first",
    ]
    assert [year(y) for y in (1999, 2024, 2005, 1905, 2000)] == [
        "nineteen ninety-nine",
        "twenty twenty-four",
        "two thousand five",
        "nineteen oh five",
        "two thousand",
    ]
    assert [fraction(*f) for f in ((1, 2), (3, 4), (2, 3), (5, 8), (7, 100))] == [
        "one half",
        "three quarters",
        "two thirds",
        "five eighths",
        "seven over one hundred",
    ]
    assert money("3.50", "$") == "three dollars and fifty cents"
    assert money("1", "€") == "one euro"
    assert money("0.99", "$") == "ninety-nine cents"
    assert money("0.01", "£") == "one penny"
    assert money("1.5", "$", "million") == "one point five million dollars"


CASES = {
    # numbers
    "I have 3 cats.": "I have three cats.",
    "Call 007 or 1,234,567 people": "Call zero zero seven or one million two hundred thirty-four thousand five hundred "
    "sixty-seven people",
    "Pi is 3.14159.": "Pi is three point one four one five nine.",
    "It is -5 outside": "It is minus five outside",
    "pages 10-20": "pages ten to twenty",
    "half is 1/2 and 3/4 is more": "half is one half and three quarters is more",
    "version 2.0.1": "version two point zero point one",
    "from 1990-2000": "from nineteen ninety to two thousand",
    "call 555-0142 or (555) 123-4567": "call five five five, zero one four two or five five five, one two three, "
    "four five six seven",
    "a 4K screen": "a four K screen",
    # ordinals
    "The 1st, 2nd and 23rd places.": "The first, second and twenty-third places.",
    # money and percentages
    "It costs $3.50.": "It costs three dollars and fifty cents.",
    "$1 and $0.99 and $1,000": "one dollar and ninety-nine cents and one thousand dollars",
    "$1.5 million in 2024": "one point five million dollars in twenty twenty-four",
    "£2.50, €1 and ¥100": "two pounds and fifty pence, one euro and one hundred yen",
    "It's 20 USD": "It's twenty dollars",
    "50% off, then 3.5% more": "fifty percent off, then three point five percent more",
    "a drop of -3.5%": "a drop of minus three point five percent",
    # dates and times
    "on 2024-03-15": "on March fifteenth, twenty twenty-four",
    "on 3/15/2024": "on March fifteenth, twenty twenty-four",
    "on 25/12/2024": "on December twenty-fifth, twenty twenty-four",
    "March 3rd, 2025": "March third, twenty twenty-five",
    "Jan. 5": "January fifth",
    "15 March 2024": "the fifteenth of March, twenty twenty-four",
    "on the 3rd of July": "on the third of July",
    "in 1999 and the 1990s": "in nineteen ninety-nine and the nineteen nineties",
    "since 2010": "since twenty ten",
    "at 7:30 p.m.": "at seven thirty P M",
    "at 7:05": "at seven oh five",
    "at 12:00": "at twelve o'clock",
    "at 14:30": "at fourteen thirty",
    "at 5pm": "at five P M",
    "at 9 AM": "at nine A M",
    # units
    "Run 5 km in 30 min.": "Run five kilometers in thirty minutes.",
    "1 kg and 1.5 kg": "one kilogram and one point five kilograms",
    "25°C or 77°F": "twenty-five degrees Celsius or seventy-seven degrees Fahrenheit",
    "10 GB at 3.2 GHz": "ten gigabytes at three point two gigahertz",
    "6 ft tall": "six feet tall",
    "60 mph": "sixty miles per hour",
    "it is 5 m long, 2 s later": "it is five meters long, two seconds later",
    "5g phones in the 80s": "five g phones in the eighties",
    # abbreviations
    "Dr. Smith met Mr. and Mrs. Jones.": "Doctor Smith met Mister and Missus Jones.",
    "Visit St. Louis via Main St.": "Visit Saint Louis via Main Street.",
    "e.g. this, i.e. that, etc. Then": "for example this, that is that, et cetera. Then",
    "cats vs. dogs": "cats versus dogs",
    "No. 5 and #3": "number five and number three",
    "approx. 10": "approximately ten",
    # maths
    "3 + 4 = 7": "three plus four equals seven",
    "3+4=7": "three plus four equals seven",
    "5 - 3 = 2": "five minus three equals two",
    "8 / 2 = 4": "eight divided by two equals four",
    "2 * 3 × 4 ÷ 6": "two times three times four divided by six",
    "x^2 and 2^10": "x squared and two to the power of ten",
    "x² + y² = r²": "x squared plus y squared equals r squared",
    "E = mc²": "E equals mc squared",
    "a < b and c >= d": "a is less than b and c is greater than or equal to d",
    "x ≠ y ≈ z": "x is not equal to y is approximately z",
    "y = x-1": "y equals x minus one",
    "√16 = 4": "the square root of sixteen equals four",
    "α + β = γ": "alpha plus beta equals gamma",
    "Δx → 0 as n → ∞": "delta x to zero as n to infinity",
    "π r²": "pi r squared",
    "Vitamin B-12": "Vitamin B-twelve",
    "±5": "plus or minus five",
    # web addresses and code
    "See https://www.example.com/docs/install?x=1.": "See example dot com slash docs slash install.",
    "Go to example.org now": "Go to example dot org now",
    "Mail jane.doe@example.org": "Mail jane dot doe at example dot org",
    "Run `os.path.join()` then `x == 1`": "Run os dot path dot join then x equals one",
    "Set `max_tokens` to 5": "Set max tokens to five",
    "Use C++ and I/O": "Use C plus plus and I slash O",
    # markdown and emoji
    "**Bold** and *italic* and ~~old~~": "Bold and italic and old",
    "# Title\n- one\n- two": "Title.\none\ntwo",
    "1. Preheat\n2. Bake": "one, Preheat\ntwo, Bake",
    "> quoted": "quoted",
    "[the docs](https://example.com/docs)": "the docs",
    "![a cat](cat.png)": "a cat",
    "<b>bold</b> &amp; plain": "bold and plain",
    "| a | b |\n|---|---|\n| 1 | 2 |": "a, b.\none, two.",
    "I love it 😀👍🏽!": "I love it!",
    "Family: 👨‍👩‍👧 and flag 🇫🇷.": "Family: and flag.",
    "snake_case and 2 * 3 * 4": "snake case and two times three times four",
    "Tom & Jerry": "Tom and Jerry",
}


@pytest.mark.parametrize(("text", "spoken"), CASES.items(), ids=list(CASES))
def test_english_normalisation(text: str, spoken: str) -> None:
    assert normalise_for_speech(text) == spoken


def test_fenced_code_is_announced_not_read() -> None:
    text = "Try this:\n```python\nprint('x = 1')\n```\nIt prints one."
    assert normalise_for_speech(text) == f"Try this:\n{CODE_BLOCK_PHRASE}\nIt prints one."
    # A block cut off by the end of the text (a piece of a long block) is announced too.
    assert normalise_for_speech("```js\nlet a = 1;") == CODE_BLOCK_PHRASE


def test_control_characters_and_invisible_format_characters_are_removed() -> None:
    assert remove_control_characters("Hel\x00lo\x07 wor\x1b[31mld\x1b[0m\u200b!\u202e") == "Hello world!"
    assert remove_control_characters("a\r\nb\tc\u2028d") == "a\n\nb c\nd"
    assert normalise_for_speech("\x01\x02\x03") == ""


def test_other_languages_get_only_the_neutral_clean_up() -> None:
    assert normalise_for_speech("**Hallo** 😀 `x` 3 + 4", language="de-DE") == "Hallo x 3 + 4"


def test_a_whole_reply() -> None:
    reply = (
        "## Your trip\n\n"
        "**Dr. Lee** says the flight on 2025-07-04 leaves at 9:15 a.m. and costs $420.50 — about 15% less "
        "than last year 🎉. See https://example.com/trips for details, e.g. baggage (max. 23 kg)."
    )
    assert normalise_for_speech(reply) == (
        "Your trip.\n"
        "Doctor Lee says the flight on July fourth, twenty twenty-five leaves at nine fifteen A M and costs "
        "four hundred twenty dollars and fifty cents, about fifteen percent less than last year. See example dot "
        "com slash trips for details, for example baggage (max. twenty-three kilograms)."
    )


def test_normalisation_is_idempotent_on_its_output() -> None:
    for text in CASES:
        once = normalise_for_speech(text)
        assert normalise_for_speech(once) == once, text
