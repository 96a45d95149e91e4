"""Engine-independent text helpers of the LLM service."""

from services.llm.backends.text import IncrementalDetokenizer, StopStringFilter, common_prefix_length


def test_detokenizer_emits_deltas_and_waits_for_whole_characters() -> None:
    pieces = {1: b"Caf", 2: b"\xc3", 3: b"\xa9 au", 4: b" lait"}

    def decode(ids: list[int]) -> str:
        return b"".join(pieces[i] for i in ids).decode("utf-8", errors="replace")

    detokenizer = IncrementalDetokenizer(decode)
    assert [detokenizer.add(i) for i in (1, 2, 3, 4)] == ["Caf", "", "é au", " lait"]


def test_stop_string_is_cut_even_when_split_across_deltas() -> None:
    stops = StopStringFilter(["\nUser:"])
    out = [stops.push(d) for d in ("Hello", " there\nUs", "er: ignored")]
    assert "".join(out) == "Hello there"
    assert stops.stopped


def test_held_text_that_was_not_a_stop_is_released() -> None:
    stops = StopStringFilter(["END"])
    assert stops.push("THE EN") == "THE "
    assert stops.push("D") == ""
    assert stops.stopped
    stops = StopStringFilter(["END"])
    assert stops.push("THE EN") + stops.push("TRY") == "THE ENTRY"
    assert not stops.stopped


def test_no_stop_strings_passes_everything() -> None:
    assert StopStringFilter([]).push("anything END") == "anything END"


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
