"""Segmentation of streamed text: where pieces are cut, whatever the size of the deltas."""

import pytest

from services.tts.segmentation import GROWTH, Segment, SegmentLimits, TextSegmenter


def segment(text: str, step: int | None = None, limits: SegmentLimits | None = None) -> list[Segment]:
    """Feed ``text`` in pieces of ``step`` characters (word by word, like LLM tokens, if None)."""
    segmenter = TextSegmenter(limits)
    pieces: list[str]
    if step is None:
        words = text.split(" ")
        pieces = [words[0]] + [" " + word for word in words[1:]]
    else:
        pieces = [text[i : i + step] for i in range(0, len(text), step)]
    out = []
    for piece in pieces:
        out.extend(segmenter.push(piece))
    return out + segmenter.finish()


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


REPLY = (
    "Sure, here is the plan. Dr. Smith arrives at 7:30 p.m. tomorrow, e.g. after dinner, and J. R. Tolkien "
    "joins him. It costs $3.50 in total! Is that OK? Pi is about 3.14, see example.com for more. Done"
)


@pytest.mark.parametrize("step", [None, 1, 2, 7, 1000])
def test_pieces_do_not_depend_on_how_the_text_is_split(step: int | None) -> None:
    assert texts(segment(REPLY, step)) == [
        "Sure,",
        "here is the plan.",
        "Dr. Smith arrives at 7:30 p.m. tomorrow,",
        "e.g. after dinner, and J. R. Tolkien joins him.",
        "It costs $3.50 in total!",
        "Is that OK?",
        "Pi is about 3.14, see example.com for more.",
        "Done",
    ]


def test_the_first_piece_is_cut_short_even_without_punctuation() -> None:
    text = "The quick brown fox jumps over the lazy dog and keeps running far away from everything it knows"
    pieces = texts(segment(text, limits=SegmentLimits(first_max_chars=30)))
    assert pieces[0] == "The quick brown fox jumps over"
    assert pieces[1:] == ["the lazy dog and keeps running far away from everything it knows"]


def test_pieces_grow_from_clauses_to_whole_sentences() -> None:
    limits = SegmentLimits(first_max_chars=40, clause_min_chars=30, max_chars=300)
    text = (
        "Yes. One, two, three. This sentence is rather long, so it is split at its comma, and again here. "
        "Well, yes, with enough said this one stays whole."
    )
    assert texts(segment(text, limits=limits)) == [
        "Yes.",
        "One,",
        "two, three.",
        "This sentence is rather long,",
        "so it is split at its comma, and again here.",
        "Well, yes, with enough said this one stays whole.",
    ]


def test_each_piece_is_at_most_growth_times_the_text_before_it() -> None:
    limits = SegmentLimits(first_max_chars=20, clause_min_chars=1000, max_chars=1000)
    words = " ".join(f"w{i}" for i in range(400))  # no punctuation: only the caps cut
    pieces = texts(segment(words, limits=limits))
    before = 0
    for piece in pieces:
        assert len(piece) <= max(20, GROWTH * before)
        before += len(piece)
    assert len(pieces[0]) <= 20 < 2 * len(pieces[0]) < len(pieces[1]) < len(pieces[2]) / 2


def test_no_piece_is_longer_than_the_cap() -> None:
    limits = SegmentLimits(first_max_chars=20, clause_min_chars=1000, max_chars=50)
    words = " ".join(f"word{i}" for i in range(200))
    pieces = texts(segment(words, limits=limits))
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == words
    # Text without any space is cut hard at the cap rather than buffered without bound.
    blob = "x" * 1000
    segmenter = TextSegmenter(limits)
    out = segmenter.push(blob)
    assert segmenter.buffered_chars <= 50
    assert "".join(texts(out + segmenter.finish())) == blob


def test_line_breaks_end_pieces_and_list_numbers_do_not() -> None:
    text = "Steps:\n1. Preheat the oven.\n2. Bake for 20 min.\n\n- a bullet\nLast line"
    assert texts(segment(text, step=3)) == [
        "Steps:",
        "1. Preheat the oven.",
        "2. Bake for 20 min.",
        "- a bullet",
        "Last line",
    ]


def test_quotes_and_brackets_stay_with_their_sentence() -> None:
    text = 'He said "stop!" and left. (It was late.) "Really?" she asked. Yes.'
    assert texts(segment(text)) == ['He said "stop!" and left.', "(It was late.)", '"Really?" she asked.', "Yes."]


def test_inline_code_and_numbers_are_not_cut() -> None:
    text = "Call `a.b(1, 2)` now. Version 2.0.1 is out. It is 1,000 km."
    assert texts(segment(text, step=1)) == ["Call `a.b(1, 2)` now.", "Version 2.0.1 is out.", "It is 1,000 km."]


def test_fenced_code_is_one_piece_marked_as_code() -> None:
    text = "Here is code:\n```python\nprint('a. b, c')\nx = 1\n```\nThat prints it. Done."
    pieces = segment(text, step=2)
    assert [(p.text, p.code) for p in pieces] == [
        ("Here is code:", False),
        ("```python\nprint('a. b, c')\nx = 1\n```", True),
        ("That prints it.", False),
        ("Done.", False),
    ]
    assert pieces[1].opens_code_block


def test_a_long_code_block_goes_out_in_pieces_and_only_the_first_opens_it() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(100))
    pieces = segment(f"Look:\n```\n{code}\n```\nEnd.", step=5, limits=SegmentLimits(max_chars=120))
    code_pieces = [p for p in pieces if p.code]
    assert len(code_pieces) > 3
    assert [p.opens_code_block for p in code_pieces] == [True] + [False] * (len(code_pieces) - 1)
    assert all(len(p.text) <= 120 for p in code_pieces)
    assert pieces[-1] == Segment("End.")


def test_an_unclosed_code_block_ends_with_the_text() -> None:
    pieces = segment("Try:\n```\nprint(1)", step=3)
    assert [(p.text, p.code) for p in pieces] == [("Try:", False), ("```\nprint(1)", True)]


def test_eager_boundaries_do_not_wait_for_the_next_token() -> None:
    segmenter = TextSegmenter()
    assert texts(segmenter.push("Hello,")) == ["Hello,"]
    assert texts(segmenter.push(" is it you?")) == ["is it you?"]
    # A full stop waits: it may be a decimal point or an abbreviation.
    assert segmenter.push(" It costs 3.") == []
    assert texts(segmenter.push("5 euros. Bye")) == ["It costs 3.5 euros."]
    assert texts(segmenter.finish()) == ["Bye"]


def test_whitespace_and_punctuation_only_text_makes_no_piece() -> None:
    assert segment("   \n\n ... ") == [Segment("...")]
    assert segment("") == []
    assert segment("?!") == [Segment("?!")]
