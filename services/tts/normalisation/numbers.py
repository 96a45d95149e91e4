"""Numbers as English words: cardinals, ordinals, years, decimals, fractions, money, dates, times,
units. num2words does the counting; this module decides which reading a string of digits gets."""

from __future__ import annotations

import re

from num2words import num2words

# Beyond this many digits a number is read digit by digit (an id, not a quantity).
MAX_CARDINAL_DIGITS = 15

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_BY_PREFIX = {month[:3].lower(): month for month in MONTHS}


def cardinal(value: int) -> str:
    """``1234`` → "one thousand two hundred thirty-four" (American: no "and", no commas)."""
    if value < 0:
        return "minus " + cardinal(-value)
    if len(str(value)) > MAX_CARDINAL_DIGITS:
        return digits(str(value))
    return _american(num2words(value))


def ordinal(value: int) -> str:
    """``22`` → "twenty-second"."""
    return _american(num2words(value, to="ordinal"))


def year(value: int) -> str:
    """``1999`` → "nineteen ninety-nine", ``2024`` → "twenty twenty-four", ``2005`` → "two thousand five"."""
    if 2000 <= value <= 2009:
        return cardinal(value)
    return _american(num2words(value, to="year")).replace("oh-", "oh ")


def digits(text: str) -> str:
    """Read a string of digits one by one: "0042" → "zero zero four two"."""
    return " ".join(DIGIT_WORDS[int(ch)] for ch in text if ch.isdigit())


def decimal(text: str) -> str:
    """``"3.14"`` → "three point one four"; ``"1,250"`` → "one thousand two hundred fifty"."""
    whole, _, fraction = text.replace(",", "").partition(".")
    spoken = cardinal(int(whole)) if whole else "zero"
    if fraction:
        spoken += " point " + digits(fraction)
    return spoken


def plural(word: str, count_text: str) -> str:
    """``word`` for exactly one, its plural otherwise ("1 km" one kilometer, "1.5 km" kilometers)."""
    if count_text.replace(",", "") in ("1", "1.0", "-1"):
        return word
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def fraction(numerator: int, denominator: int) -> str:
    """``3/4`` → "three quarters", ``2/3`` → "two thirds", ``7/100`` → "seven over one hundred"."""
    if denominator in _FRACTION_NAMES:
        one, many = _FRACTION_NAMES[denominator]
    elif 3 <= denominator <= 20:
        one = ordinal(denominator)
        many = one + "s"
    else:
        return f"{cardinal(numerator)} over {cardinal(denominator)}"
    if numerator == 1:
        return "one " + one
    return f"{cardinal(numerator)} {many}"


def _american(words: str) -> str:
    return words.replace(",", "").replace(" and ", " ")


# --- money --------------------------------------------------------------------------------

# symbol or code → (unit, units, subunit, subunits)
CURRENCIES: dict[str, tuple[str, str, str, str]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "USD": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "sen", "sen"),
    "JPY": ("yen", "yen", "sen", "sen"),
    "₹": ("rupee", "rupees", "paisa", "paise"),
    "INR": ("rupee", "rupees", "paisa", "paise"),
    "CHF": ("franc", "francs", "centime", "centimes"),
}
SCALES = {
    "thousand": "thousand",
    "k": "thousand",
    "K": "thousand",
    "million": "million",
    "m": "million",
    "M": "million",
    "mn": "million",
    "billion": "billion",
    "b": "billion",
    "B": "billion",
    "bn": "billion",
    "trillion": "trillion",
    "T": "trillion",
}
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s?(?P<scale>thousand|million|billion|trillion)|(?P<short>[kKmMbBT]|mn|bn))(?![\w])"
_CURRENCY_SYMBOL_RE = re.compile(
    rf"(?P<neg>[-−])?(?P<symbol>[$€£¥₹])\s?(?P<amount>{_AMOUNT})(?:{_SCALE})?(?![\w.,]\d)",
)
_CURRENCY_CODE_RE = re.compile(
    rf"\b(?:(?P<code1>USD|EUR|GBP|JPY|INR|CHF)\s?(?P<amount1>{_AMOUNT})|(?P<amount2>{_AMOUNT})\s?(?P<code2>USD|EUR|GBP|JPY|INR|CHF))\b"
)


def money(amount: str, currency: str, scale: str | None = None) -> str:
    """``money("3.50", "$")`` → "three dollars and fifty cents"."""
    unit, units, subunit, subunits = CURRENCIES[currency]
    if scale:
        return f"{decimal(amount)} {SCALES[scale]} {units}"
    whole, _, cents = amount.replace(",", "").partition(".")
    if cents and len(cents) != 2:
        return f"{decimal(amount)} {units}"
    whole_value, cents_value = int(whole or 0), int(cents or 0)
    parts = []
    if whole_value or not cents_value:
        parts.append(f"{cardinal(whole_value)} {unit if whole_value == 1 else units}")
    if cents_value:
        parts.append(f"{cardinal(cents_value)} {subunit if cents_value == 1 else subunits}")
    return " and ".join(parts)


def expand_currency(text: str) -> str:
    def symbol(match: re.Match[str]) -> str:
        scale = match["scale"] or match["short"]
        spoken = money(match["amount"], match["symbol"], scale)
        return ("minus " if match["neg"] else "") + spoken

    def code(match: re.Match[str]) -> str:
        return money(match["amount1"] or match["amount2"], match["code1"] or match["code2"])

    return _CURRENCY_CODE_RE.sub(code, _CURRENCY_SYMBOL_RE.sub(symbol, text))


# --- percentages, ordinals ----------------------------------------------------------------

_PERCENT_RE = re.compile(rf"(?P<neg>(?<![\w)])[-−])?(?P<amount>{_AMOUNT})\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)


def expand_percentages(text: str) -> str:
    return _PERCENT_RE.sub(
        lambda m: ("minus " if m["neg"] else "") + decimal(m["amount"]) + " percent",
        text,
    )


def expand_ordinals(text: str) -> str:
    return _ORDINAL_RE.sub(lambda m: ordinal(int(m[1])), text)


# --- dates and times ----------------------------------------------------------------------

_MONTH_NAME = (
    r"(?P<month>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_ISO_DATE_RE = re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b")
_SLASH_DATE_RE = re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})\b")
_MONTH_DAY_RE = re.compile(
    rf"\b{_MONTH_NAME}\s(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s(?P<y>\d{{4}})\b)?",
)
_DAY_MONTH_RE = re.compile(
    rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s(?:of\s)?{_MONTH_NAME}(?:,?\s(?P<y>\d{{4}})\b)?",
)
_MONTH_YEAR_RE = re.compile(rf"\b{_MONTH_NAME}\s(?P<y>\d{{4}})\b")
_DECADE_RE = re.compile(r"(?:\b(?P<century>1\d|20)(?P<decade>\d)|(?:\b|')(?P<short>[2-9]))0s\b")
# A four-digit number read as a year after these words ("in 1999", "since 2010").
_YEAR_RE = re.compile(
    r"\b(?P<word>in|since|by|until|till|from|during|before|after|of|year|circa|c\.)\s(?P<y>1[1-9]\d{2}|20\d{2})\b(?![-–]\d)",
    re.IGNORECASE,
)


def _month(name: str) -> str:
    return _MONTH_BY_PREFIX[name.lower()[:3]]


def _date(month: int, day: int, year_text: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    spoken = f"{MONTHS[month - 1]} {ordinal(day)}"
    return spoken + (f", {year(int(year_text))}" if year_text else "")


def expand_dates(text: str) -> str:
    def iso(match: re.Match[str]) -> str:
        return _date(int(match["m"]), int(match["d"]), match["y"]) or match[0]

    def slash(match: re.Match[str]) -> str:
        first, second = int(match["a"]), int(match["b"])
        # American order (month/day) unless only day/month makes sense.
        month, day = (first, second) if first <= 12 else (second, first)
        return _date(month, day, match["y"]) or match[0]

    def month_day(match: re.Match[str]) -> str:
        day = int(match["d"])
        if not 1 <= day <= 31:
            return match[0]
        spoken = f"{_month(match['month'])} {ordinal(day)}"
        return spoken + (f", {year(int(match['y']))}" if match["y"] else "")

    def day_month(match: re.Match[str]) -> str:
        day = int(match["d"])
        if not 1 <= day <= 31:
            return match[0]
        # "the" unless the text already has it ("on the 3rd of July").
        article = "" if re.search(r"\bthe\s$", match.string[: match.start()], re.IGNORECASE) else "the "
        spoken = f"{article}{ordinal(day)} of {_month(match['month'])}"
        return spoken + (f", {year(int(match['y']))}" if match["y"] else "")

    def decade(match: re.Match[str]) -> str:
        tens = int(match["decade"] or match["short"]) * 10
        word = "hundreds" if tens == 0 else cardinal(tens).replace("y", "ies")
        return f"{cardinal(int(match['century']))} {word}" if match["century"] else word

    text = _ISO_DATE_RE.sub(iso, text)
    text = _SLASH_DATE_RE.sub(slash, text)
    text = _MONTH_DAY_RE.sub(month_day, text)
    text = _DAY_MONTH_RE.sub(day_month, text)
    text = _MONTH_YEAR_RE.sub(lambda m: f"{_month(m['month'])} {year(int(m['y']))}", text)
    text = _DECADE_RE.sub(decade, text)
    return _YEAR_RE.sub(lambda m: f"{m['word']} {year(int(m['y']))}", text)


_MERIDIEM = r"(?P<meridiem>[ap])\.?\s?m\b\.?"
_CLOCK_RE = re.compile(
    rf"\b(?P<h>[01]?\d|2[0-3]):(?P<min>[0-5]\d)(?::(?P<s>[0-5]\d))?(?:\s?{_MERIDIEM})?",
    re.IGNORECASE,
)
_HOUR_MERIDIEM_RE = re.compile(rf"\b(?P<h>1[0-2]|0?[1-9])\s?{_MERIDIEM}", re.IGNORECASE)


def _meridiem(letter: str | None) -> str:
    return f" {letter.upper()} M" if letter else ""


def expand_times(text: str) -> str:
    def clock(match: re.Match[str]) -> str:
        hour, minute = int(match["h"]), int(match["min"])
        if minute == 0:
            spoken = f"{cardinal(hour)} o'clock" if not match["meridiem"] else cardinal(hour)
            if hour > 12 or hour == 0:
                spoken = f"{cardinal(hour)} hundred" if hour else "midnight"
        elif minute < 10:
            spoken = f"{cardinal(hour)} oh {cardinal(minute)}"
        else:
            spoken = f"{cardinal(hour)} {cardinal(minute)}"
        if match["s"]:
            spoken += f" and {cardinal(int(match['s']))} seconds"
        return spoken + _meridiem(match["meridiem"])

    text = _CLOCK_RE.sub(clock, text)
    return _HOUR_MERIDIEM_RE.sub(lambda m: cardinal(int(m["h"])) + _meridiem(m["meridiem"]), text)


# --- units ----------------------------------------------------------------------------------

# Abbreviation → singular name; only read as a unit right after a number.
UNITS: dict[str, str] = {
    "km/h": "kilometer per hour",
    "kph": "kilometer per hour",
    "mph": "mile per hour",
    "m/s": "meter per second",
    "km": "kilometer",
    "m": "meter",
    "cm": "centimeter",
    "mm": "millimeter",
    "µm": "micrometer",
    "nm": "nanometer",
    "mi": "mile",
    "ft": "foot",
    "yd": "yard",
    "kg": "kilogram",
    "g": "gram",
    "mg": "milligram",
    "lb": "pound",
    "lbs": "pound",
    "oz": "ounce",
    "t": "ton",
    "l": "liter",
    "L": "liter",
    "ml": "milliliter",
    "mL": "milliliter",
    "°C": "degree Celsius",
    "°F": "degree Fahrenheit",
    "°": "degree",
    "ms": "millisecond",
    "s": "second",
    "sec": "second",
    "min": "minute",
    "h": "hour",
    "hr": "hour",
    "hrs": "hour",
    "Hz": "hertz",
    "kHz": "kilohertz",
    "MHz": "megahertz",
    "GHz": "gigahertz",
    "KB": "kilobyte",
    "kB": "kilobyte",
    "MB": "megabyte",
    "GB": "gigabyte",
    "TB": "terabyte",
    "Mbps": "megabit per second",
    "Gbps": "gigabit per second",
    "W": "watt",
    "kW": "kilowatt",
    "kWh": "kilowatt hour",
    "V": "volt",
    "mAh": "milliamp hour",
}
_IRREGULAR_PLURALS = {
    "foot": "feet",
    "hertz": "hertz",
    "kilohertz": "kilohertz",
    "megahertz": "megahertz",
    "gigahertz": "gigahertz",
    "kelvin": "kelvin",
    "degree Celsius": "degrees Celsius",
    "degree Fahrenheit": "degrees Fahrenheit",
    "kilowatt hour": "kilowatt hours",
    "milliamp hour": "milliamp hours",
}
# One-letter units need a space after the number: "5g" is a network and "80s" a decade.
_UNIT_RE = re.compile(
    rf"(?P<amount>{_AMOUNT})(?:\s?(?P<unit>"
    + "|".join(re.escape(unit) for unit in sorted(UNITS, key=len, reverse=True) if len(unit) > 1)
    + r")|\s(?P<letter>"
    + "|".join(unit for unit in UNITS if len(unit) == 1)
    + r"))(?![\w/°])"
)


def _unit_words(unit: str, amount: str) -> str:
    singular = UNITS[unit]
    if amount.replace(",", "") in ("1", "1.0"):
        return singular
    if singular in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[singular]
    if " per " in singular:
        head, _, tail = singular.partition(" per ")
        return f"{plural(head, amount)} per {tail}"
    return plural(singular, amount)


def expand_units(text: str) -> str:
    def unit(match: re.Match[str]) -> str:
        name = match["unit"] or match["letter"]
        return f"{decimal(match['amount'])} {_unit_words(name, match['amount'])}"

    return _UNIT_RE.sub(unit, text)


# --- plain numbers --------------------------------------------------------------------------

# Phone numbers are read digit by digit, a pause between groups: "555-0142", "(555) 123-4567".
_PHONE_RE = re.compile(r"(?<![\w-])(?:\+?1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])?\d{3}-\d{4}(?![\w-])")
# Versions and addresses: "2.0.1" → "two point zero point one".
_DOTTED_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w.]\w|\.\d)")
_RANGE_RE = re.compile(r"(?<![\w.,])(\d+(?:\.\d+)?)[-–](\d+(?:\.\d+)?)(?![\w.]\d|[\w-])")
_FRACTION_RE = re.compile(r"(?<![\w./])(\d{1,3})/(\d{1,3})(?![\w/]|\.\d)")
_NEGATIVE_RE = re.compile(rf"(?<![\w)\].,])[-−](?=(?:{_AMOUNT})(?![\w]))")
_NUMBER_RE = re.compile(rf"(?<![\d.,])(?:{_AMOUNT})(?!\.\d)")
# Letters glued to digits ("4K", "x2"), apart from units and ordinals handled before.
_DIGIT_LETTER_RE = re.compile(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)")


def _number(match: re.Match[str]) -> str:
    text = match[0]
    whole = text.replace(",", "").partition(".")[0]
    if len(whole) > 1 and whole.startswith("0") and "." not in text:
        return digits(text)  # "007", a code rather than a quantity
    return decimal(text)


def _range(match: re.Match[str]) -> str:
    low, high = match[1], match[2]
    if all(re.fullmatch(r"1[1-9]\d\d|20\d\d", end) for end in (low, high)):
        return f"{year(int(low))} to {year(int(high))}"  # "1990-2000"
    return f"{decimal(low)} to {decimal(high)}"


def expand_numbers(text: str) -> str:
    text = _PHONE_RE.sub(lambda m: ", ".join(digits(group) for group in re.findall(r"\d+", m[0])), text)
    text = _DOTTED_NUMBER_RE.sub(lambda m: " point ".join(cardinal(int(part)) for part in m[0].split(".")), text)
    text = _RANGE_RE.sub(_range, text)
    text = _FRACTION_RE.sub(
        lambda m: fraction(int(m[1]), int(m[2])) if int(m[2]) else m[0],
        text,
    )
    text = _NEGATIVE_RE.sub("minus ", text)
    text = _DIGIT_LETTER_RE.sub(" ", text)
    return _NUMBER_RE.sub(_number, text)
