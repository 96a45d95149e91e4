"""Things that are not words, said in English: web addresses, code, maths, Greek letters,
abbreviations and the symbols left over."""

from __future__ import annotations

import re

# --- web addresses and e-mail ---------------------------------------------------------------

_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"'`\[\]]+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b")
_TOP_LEVEL = r"com|org|net|io|dev|ai|app|edu|gov|co|uk|de|fr|eu|info|me|tv|us"
_BARE_DOMAIN_RE = re.compile(rf"\b(?:[A-Za-z0-9-]+\.)+(?:{_TOP_LEVEL})\b(?![.\w]\w)")
_SPOKEN_PATH_PART_RE = re.compile(r"[A-Za-z]+(?:[-_][A-Za-z]+)*")


def _dotted(name: str) -> str:
    return " dot ".join(part for part in name.split(".") if part)


def _speak_url(match: re.Match[str]) -> str:
    url = match[0]
    trailing = ""
    while url and url[-1] in ".,;:!?":
        trailing = url[-1] + trailing
        url = url[:-1]
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url, flags=re.IGNORECASE)
    host, _, path = url.partition("/")
    spoken = _dotted(host.split(":")[0])
    # Path parts that are words are read ("slash docs slash install"); ids, hashes, query
    # strings and fragments are left out: nobody wants them read aloud.
    path = re.split(r"[?#]", path, maxsplit=1)[0]
    for part in path.split("/")[:3]:
        if _SPOKEN_PATH_PART_RE.fullmatch(part):
            spoken += " slash " + re.sub(r"[-_]", " ", part)
    return spoken + trailing


def _speak_email(match: re.Match[str]) -> str:
    user, _, domain = match[0].partition("@")
    return f"{_dotted(user)} at {_dotted(domain)}"


def expand_web_addresses(text: str) -> str:
    text = _EMAIL_RE.sub(_speak_email, text)
    text = _URL_RE.sub(_speak_url, text)
    return _BARE_DOMAIN_RE.sub(lambda m: _dotted(m[0]), text)


# --- inline code ----------------------------------------------------------------------------

_CODE_SPAN_RE = re.compile(r"`([^`\n]+)`")
_CODE_OPERATORS = {
    "==": " equals ",
    "!=": " not equals ",
    "<=": " less than or equal to ",
    ">=": " greater than or equal to ",
    "->": " arrow ",
    "=>": " arrow ",
    "&&": " and ",
    "||": " or ",
    "+=": " plus equals ",
    "-=": " minus equals ",
}


def _speak_code(code: str) -> str:
    """Code read the way a person reads it aloud: names split, calls and brackets silent."""
    code = re.sub(r"\(\s*\)", "", code)  # foo() -> foo
    for operator, words in _CODE_OPERATORS.items():
        code = code.replace(operator, words)
    code = re.sub(r"(?<=\w)\.(?=[A-Za-z_])", " dot ", code)  # os.path -> os dot path
    code = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", code)  # camelCase -> camel Case
    code = re.sub(r"[_{}\[\];`$\\]+", " ", code)
    return code.strip()


def expand_code_spans(text: str) -> str:
    return _CODE_SPAN_RE.sub(lambda m: _speak_code(m[1]), text)


# --- maths ----------------------------------------------------------------------------------

GREEK_LETTERS = {
    "α": "alpha",
    "β": "beta",
    "γ": "gamma",
    "δ": "delta",
    "ε": "epsilon",
    "ζ": "zeta",
    "η": "eta",
    "θ": "theta",
    "ι": "iota",
    "κ": "kappa",
    "λ": "lambda",
    "μ": "mu",
    "ν": "nu",
    "ξ": "xi",
    "ο": "omicron",
    "π": "pi",
    "ρ": "rho",
    "σ": "sigma",
    "ς": "sigma",
    "τ": "tau",
    "υ": "upsilon",
    "φ": "phi",
    "χ": "chi",
    "ψ": "psi",
    "ω": "omega",
}
GREEK_LETTERS |= {letter.upper(): name for letter, name in GREEK_LETTERS.items() if letter != "ς"}

# Symbols that are read the same wherever they stand.
MATH_SYMBOLS = {
    "≠": "is not equal to",
    "≈": "is approximately",
    "≤": "is less than or equal to",
    "≥": "is greater than or equal to",
    "±": "plus or minus",
    "∓": "minus or plus",
    "×": "times",
    "÷": "divided by",
    "√": "the square root of",
    "∛": "the cube root of",
    "∞": "infinity",
    "∑": "the sum of",
    "∏": "the product of",
    "∫": "the integral of",
    "∂": "partial",
    "∇": "nabla",
    "∈": "is in",
    "∉": "is not in",
    "⊂": "is a subset of",
    "∪": "union",
    "∩": "intersection",
    "∀": "for all",
    "∃": "there exists",
    "∝": "is proportional to",
    "→": "to",
    "⇒": "implies",
    "⇔": "if and only if",
    "∴": "therefore",
    "‰": "per mille",
}
_SUPERSCRIPT_RE = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")

# Operators between two operands: numbers, single-letter variables or brackets. Spaces optional,
# so "3+4=7" and "3 + 4 = 7" read the same; words around them are left alone ("rock-n-roll").
_BINARY_OPERATORS = {
    "==": "equals",
    "!=": "is not equal to",
    "<=": "is less than or equal to",
    ">=": "is greater than or equal to",
    "=": "equals",
    "+": "plus",
    "-": "minus",
    "−": "minus",
    "*": "times",
    "/": "divided by",
    "<": "is less than",
    ">": "is greater than",
    "^": "to the power of",
}
_BINARY_RE = re.compile(
    r"(?P<left>\d|\b[A-Za-z]\b|[)\]²³])(?P<space>\s?)(?P<op>==|!=|<=|>=|[=+\-−*/<>^])(?P<after>\s?)"
    r"(?=[-−]?\d|\b[A-Za-z]\b|[(\[√∛πα-ω]|(?:pi|alpha|beta|gamma|theta)\b)"
)
_POWER_RE = re.compile(r"(?<=[\w)])\^(?P<exp>[23])\b")


def _superscript(match: re.Match[str]) -> str:
    power = match[0].translate(_SUPERSCRIPT_DIGITS)
    if power == "2":
        return " squared"
    if power == "3":
        return " cubed"
    return f" to the power of {power}"


def _binary(match: re.Match[str]) -> str:
    op, left = match["op"], match["left"]
    spaced = match["space"] or match["after"]
    following = match.string[match.end() : match.end() + 1]
    # Unspaced, "3/4" is a fraction and "I/O" no division; "10-20" is a range (both read later) and
    # "B-12" a name. Unspaced "x-1" stays a subtraction.
    unspaced_name = op == "/" or (op in "-−" and (left.isupper() or (left.isdigit() and following.isdigit())))
    if not spaced and unspaced_name:
        return match[0]
    return f"{left} {_BINARY_OPERATORS[op]} "


def expand_math(text: str) -> str:
    text = _POWER_RE.sub(lambda m: " squared" if m["exp"] == "2" else " cubed", text)
    text = _SUPERSCRIPT_RE.sub(_superscript, text)
    text = _BINARY_RE.sub(_binary, text)
    for symbol, words in MATH_SYMBOLS.items():
        text = text.replace(symbol, f" {words} ")
    for letter, name in GREEK_LETTERS.items():
        text = text.replace(letter, f" {name} ")
    return text


# --- abbreviations --------------------------------------------------------------------------

# Titles before a name. Also used by segmentation: a full stop after one does not end a sentence.
TITLES = {
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Dr": "Doctor",
    "Prof": "Professor",
    "St": "Saint",
    "Mt": "Mount",
    "Sr": "Senior",
    "Jr": "Junior",
    "Capt": "Captain",
    "Gen": "General",
    "Sgt": "Sergeant",
    "Rev": "Reverend",
}
# Abbreviations that may end a sentence; the full stop stays when the next word starts one.
ABBREVIATIONS = {
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
    "vs.": "versus",
    "vs": "versus",
    "approx.": "approximately",
    "appt.": "appointment",
    "dept.": "department",
    "est.": "established",
    "Inc.": "Incorporated",
    "Ltd.": "Limited",
    "Corp.": "Corporation",
    "Co.": "Company",
    "Ave.": "Avenue",
    "Blvd.": "Boulevard",
    "Rd.": "Road",
    "Fig.": "Figure",
    "fig.": "figure",
    "w/": "with",
    "w/o": "without",
    "a.k.a.": "also known as",
    "aka": "also known as",
    "FYI": "for your information",
    "ASAP": "as soon as possible",
}
# "Mr." is always a title; "St" before a name is Saint, after a street's name it is Street.
_DOTTED_TITLE_RE = re.compile(r"\b(Mr|Mrs|Ms|Dr|Prof)\.")
_STREET_RE = re.compile(r"\b([A-Z][a-z]+) St\b(?!\.?\s+[A-Z])\.?")
_TITLE_RE = re.compile(r"\b(" + "|".join(TITLES) + r")\b\.?(?=\s+[A-Z])")
_NUMBER_ABBREVIATION_RE = re.compile(r"\b(?:No|no|Nr|nr)\.\s?(?=\d)|#(?=\d)")
_ABBREVIATION_RE = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(abbreviation) for abbreviation in sorted(ABBREVIATIONS, key=len, reverse=True))
    + r")(?![\w])(?P<next>\s+[A-Z]|\s*$)?"
)


def expand_abbreviations(text: str) -> str:
    text = _DOTTED_TITLE_RE.sub(lambda m: TITLES[m[1]], text)
    text = _STREET_RE.sub(
        lambda m: m[1] + " Street" + ("." if m[0].endswith(".") and m.end() == len(text) else ""), text
    )
    text = _TITLE_RE.sub(lambda m: TITLES[m[1]], text)
    text = _NUMBER_ABBREVIATION_RE.sub("number ", text)

    def abbreviation(match: re.Match[str]) -> str:
        found = match[1]
        words = ABBREVIATIONS[found]
        # "... and so on, etc. Then" keeps its sentence end.
        end = "." if found.endswith(".") and match["next"] is not None else ""
        return words + end + (match["next"] or "")

    return _ABBREVIATION_RE.sub(abbreviation, text)


# --- what is left ---------------------------------------------------------------------------

_SYMBOL_WORDS = {
    "&": " and ",
    "@": " at ",
    "+": " plus ",
    "=": " equals ",
    "<": " less than ",
    ">": " greater than ",
    "~": " about ",
    "°": " degrees ",
    "§": " section ",
    "©": " copyright ",
}
_LEFTOVER_RE = re.compile(r"[&@+=<>~°§©]")
_WORD_SLASH_RE = re.compile(r"(?<=[A-Za-z])/(?=[A-Za-z])")
_SILENT_RE = re.compile(r"[*_#^|\\{}\[\]<>`®™]+")


def expand_symbols(text: str) -> str:
    text = text.replace("and/or", "and or")
    text = re.sub(r"\bC\+\+", "C plus plus", text)
    text = _WORD_SLASH_RE.sub(" slash ", text)
    text = _LEFTOVER_RE.sub(lambda m: _SYMBOL_WORDS[m[0]], text)
    text = re.sub(r"\s[-–—]+\s", ", ", text)  # a dash between words is a pause
    return _SILENT_RE.sub(" ", text)
