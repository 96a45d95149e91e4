"""Language-neutral clean-up of text before it is spoken: control characters, markup, emoji."""

from __future__ import annotations

import html
import re
import unicodedata

import emoji

# Spoken instead of a fenced code block: reading code aloud helps nobody, and the listener should
# know something was skipped.
CODE_BLOCK_PHRASE = "The code is shown in the transcript."

_ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Control, format (zero-width, bidirectional overrides), surrogate, private-use, unassigned.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn"))
_LINE_BREAKS = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n", "\t": " ", "\v": "\n", "\f": "\n"})


def remove_control_characters(text: str) -> str:
    """Drop control and invisible format characters (keeping line breaks as newlines).

    Applied to text as it arrives, so neither the segmenter nor a client's transcript sees
    terminal escapes, NULs or bidirectional overrides.
    """
    text = _ANSI_ESCAPE_RE.sub("", text).translate(_LINE_BREAKS)
    return "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in _INVISIBLE_CATEGORIES)


_FENCED_CODE_RE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_UNCLOSED_FENCE_RE = re.compile(r"^[ \t]*(```|~~~).*", re.MULTILINE | re.DOTALL)
_CODE_SPAN_RE = re.compile(r"`[^`\n]+`")
_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_AUTOLINK_RE = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_HTML_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_HEADING_RE = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.MULTILINE)
_RULE_RE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.MULTILINE)
_QUOTE_RE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)
_BULLET_RE = re.compile(r"^[ \t]*[-*+•][ \t]+", re.MULTILINE)
_NUMBERED_RE = re.compile(r"^[ \t]*(\d{1,3})[.)][ \t]+", re.MULTILINE)
_TABLE_RULE_RE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$", re.MULTILINE)
_TABLE_ROW_RE = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.MULTILINE)
# Emphasis markers must hug the text they mark, so "2 * 3 * 4" and snake_case are left alone.
_STRONG_RE = re.compile(r"(?<!\w)(\*\*|__)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_EMPHASIS_RE = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_STRIKE_RE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")


def strip_markdown(text: str) -> str:
    """Markdown and HTML to plain text; inline code keeps its backticks for the next stage."""
    text = _FENCED_CODE_RE.sub(f" {CODE_BLOCK_PHRASE}\n", text)
    text = _UNCLOSED_FENCE_RE.sub(f" {CODE_BLOCK_PHRASE}\n", text)
    # Code spans are set aside so that emphasis rules do not touch what is inside them.
    spans: list[str] = []

    def keep_span(match: re.Match[str]) -> str:
        spans.append(match[0])
        return _PLACEHOLDER.format(len(spans) - 1)

    text = _CODE_SPAN_RE.sub(keep_span, text)
    text = _IMAGE_RE.sub(r"\1", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _AUTOLINK_RE.sub(lambda m: m[1].removeprefix("mailto:"), text)
    text = _HTML_TAG_RE.sub(" ", text)
    text = html.unescape(text)
    text = _HEADING_RE.sub(r"\1.", text)
    text = _RULE_RE.sub("", text)
    text = _TABLE_RULE_RE.sub("", text)
    text = _TABLE_ROW_RE.sub(lambda m: ", ".join(cell.strip() for cell in m[1].split("|")) + ".", text)
    text = _QUOTE_RE.sub("", text)
    text = _BULLET_RE.sub("", text)
    text = _NUMBERED_RE.sub(r"\1, ", text)
    for pattern in (_STRONG_RE, _EMPHASIS_RE):
        text = pattern.sub(r"\2", text)
    text = _STRIKE_RE.sub(r"\1", text)
    return _PLACEHOLDER_RE.sub(lambda m: spans[int(m[1])], text)


def strip_emoji(text: str) -> str:
    """Remove emoji (whole sequences: flags, skin tones, families) and pictographic symbols."""
    text = emoji.replace_emoji(text, replace=" ")
    return "".join(" " if unicodedata.category(ch) == "So" and ch not in "°©" else ch for ch in text)


def collapse_whitespace(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ?\n[\n ]*", "\n", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    return text.strip()
