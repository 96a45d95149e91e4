"""SpeechSegmenter: probabilities per window in, speech events with sample offsets out."""

from services.vad.segmenter import SegmenterConfig, SpeechEnd, SpeechSegmenter, SpeechStart

WINDOW = 512  # 32 ms at 16 kHz


def run(probabilities: list[float], **options: int | float) -> tuple[list[tuple[int, object]], SpeechSegmenter]:
    config = {"sample_rate": 16000, "threshold": 0.5, "min_silence_ms": 100, "speech_pad_ms": 30, "min_speech_ms": 0}
    config.update(options)
    segmenter = SpeechSegmenter(SegmenterConfig(**config))  # type: ignore[arg-type]
    events = []
    for index, probability in enumerate(probabilities):
        event = segmenter.push(probability, index * WINDOW, (index + 1) * WINDOW)
        if event:
            events.append((index, event))
    return events, segmenter


def test_silence_gives_no_events() -> None:
    events, segmenter = run([0.0, 0.1, 0.3, 0.49] * 20)
    assert events == []
    assert segmenter.finish(80 * WINDOW) is None


def test_speech_start_and_end_are_padded_and_wait_for_min_silence() -> None:
    # 10 silent, 20 speech, 10 silent windows; 100 ms = 1600 samples = 3.125 windows of silence.
    events, _ = run([0.0] * 10 + [0.9] * 20 + [0.0] * 10)
    pad = 480
    assert events[0] == (10, SpeechStart(10 * WINDOW - pad))
    # Silence starts at window 30; the end is declared once 1600 samples of it have passed: at
    # the end of window 33 (4 windows = 2048 samples).
    assert events[1] == (33, SpeechEnd(10 * WINDOW - pad, 30 * WINDOW + pad))
    assert len(events) == 2


def test_short_pause_does_not_end_speech() -> None:
    events, _ = run([0.9] * 5 + [0.0] * 3 + [0.9] * 5 + [0.0] * 10, speech_pad_ms=0)
    assert [type(e) for _, e in events] == [SpeechStart, SpeechEnd]
    assert events[1][1] == SpeechEnd(0, 13 * WINDOW)


def test_probabilities_between_thresholds_continue_speech() -> None:
    # 0.4 is below the threshold but above threshold - 0.15: not silence, so no end.
    events, segmenter = run([0.9] * 3 + [0.4] * 20, speech_pad_ms=0)
    assert [type(e) for _, e in events] == [SpeechStart]
    assert segmenter.in_speech


def test_min_speech_drops_short_blips_and_delays_start() -> None:
    events, _ = run([0.9] * 2 + [0.0] * 10, min_speech_ms=100)
    assert events == []
    events, _ = run([0.0] * 4 + [0.9] * 10, min_speech_ms=100, speech_pad_ms=0)
    # 100 ms = 1600 samples: reached at the end of the 4th speech window (index 7); the start is
    # still where the speech began.
    assert events == [(7, SpeechStart(4 * WINDOW))]


def test_finish_closes_open_speech_at_stream_end() -> None:
    events, segmenter = run([0.9] * 10, speech_pad_ms=0)
    assert events == [(0, SpeechStart(0))]
    assert segmenter.finish(10 * WINDOW + 100) == SpeechEnd(0, 10 * WINDOW + 100)
    assert segmenter.finish(10 * WINDOW + 100) is None


def test_padding_never_reaches_back_into_the_previous_segment() -> None:
    events, _ = run([0.9] * 4 + [0.0] * 4 + [0.9] * 4 + [0.0] * 4, min_silence_ms=100, speech_pad_ms=200)
    ends = [e for _, e in events if isinstance(e, SpeechEnd)]
    assert len(ends) == 2
    assert ends[1].start >= ends[0].end
