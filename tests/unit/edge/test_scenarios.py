"""The edge's turn-taking, scenario by scenario, on a virtual clock (fakes.py).

Each scenario is a script of the user's speech and the services' delays; it asserts on the
events the client got and when. Times are seconds of scenario time. With the defaults a pause is
reported after 200 ms of silence (the speculative pause) and a turn ends after 500 ms; the fake
TTS speaks 60 ms a character.
"""

from __future__ import annotations

import pytest

from services.edge.pool import ReplicaLimits
from tests.unit.edge.fakes import Event, Reply, Scenario, run

COUNTING = "One two three four five six seven eight nine ten."  # 3 s of speech from the fake TTS


def _done(s: Scenario) -> list[dict]:
    return [e.data["response"] for e in s.of("response.done")]


def _between(events: list[Event], start: float, end: float) -> list[Event]:
    return [e for e in events if start <= e.at < end]


def test_half_duplex_answers_after_the_silence_and_does_not_hear_itself() -> None:
    async def scenario() -> None:
        async with Scenario("half_duplex") as s:
            s.speak(0.5, 2.0)
            s.speak(3.0, 3.6)  # over the reply: heard as silence
            await s.until(4.0)
            first = s.first("response.created").data["response"]["id"]
            reply_end = s.playback_end(first)
            guard_end = reply_end + s.settings.echo_guard_ms / 1000
            s.speak(reply_end + 0.1, guard_end - 0.05)  # within the echo guard: not heard either
            s.speak(guard_end + 0.5, guard_end + 1.5)
            await s.until(guard_end + 4.0)

        started = s.of("input_audio_buffer.speech_started")
        assert [round(e.at, 1) for e in started] == [0.5, round(guard_end + 0.5, 1)]
        assert started[0].data["audio_start_ms"] == 200  # the speech's start less the 300 ms padding
        stopped = s.first("input_audio_buffer.speech_stopped")
        assert 2.5 <= stopped.at < 2.6  # 500 ms of silence
        assert s.first("response.created").at >= stopped.at
        assert [r["status"] for r in _done(s)] == ["completed", "completed"]
        assert len(s.services.llm.calls) == 2

    run(scenario)


def test_a_speculative_answer_is_made_in_the_pause_and_kept() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.speak(0.5, 2.0)
            await s.until(5.0)

        [call] = s.services.llm.calls
        assert call.input_ended_at is not None and 2.2 <= call.input_ended_at < 2.3  # at the 200 ms pause
        created = s.first("response.created")
        assert 2.5 <= created.at < 2.6  # but announced only once the turn's 500 ms have passed
        assert s.first("response.output_audio.delta").at == pytest.approx(created.at)  # made meanwhile
        assert s.first("input_audio_buffer.speech_stopped").at == pytest.approx(created.at)
        assert _done(s)[0]["parley"]["end_of_turn"] == {"detection": "server_vad", "reason": "silence"}

    run(scenario)


def test_a_speculative_answer_is_dropped_when_the_user_goes_on() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.speak(0.5, 1.5)
            s.speak(1.8, 2.8)  # 300 ms: longer than the speculative pause, shorter than the turn's silence
            await s.until(6.0)

        first, second = s.services.llm.calls
        assert first.stream is not None and first.stream.cancelled
        assert second.header.replaces_turn_id == first.header.turn_id
        assert second.header.user_item_ids == first.header.user_item_ids  # one user item
        assert len(s.of("input_audio_buffer.speech_started")) == 1
        assert len(s.of("input_audio_buffer.committed")) == 1
        assert len(s.of("conversation.item.input_audio_transcription.completed")) == 1
        [created] = s.of("response.created")
        assert created.at >= 3.3
        assert [r["status"] for r in _done(s)] == ["completed"]

    run(scenario)


def test_barge_in_cuts_the_reply_to_what_was_heard() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.llm.reply = Reply(text=COUNTING, token_ms=250)  # still generating at the barge-in
            s.speak(0.5, 2.0)
            s.speak(3.5, 5.0)
            await s.until(8.0)

        first, second = _done(s)
        assert first["status"] == "cancelled"
        assert first["status_details"]["reason"] == "turn_detected"
        barge = s.of("input_audio_buffer.speech_started")[1]
        assert 3.5 <= barge.at < 3.6
        cancelled_at = s.of("response.done")[0].at
        assert 3.9 <= cancelled_at < 4.2  # 400 ms of speech decide a barge-in (its pause window included)
        truncated = s.first("conversation.item.truncated")
        played = s.played_ms(first["id"], truncated.at)
        assert truncated.data["audio_end_ms"] == pytest.approx(played, abs=25)
        heard = truncated.data["parley"]["transcript"]
        assert heard and COUNTING.startswith(heard) and len(heard) < len(COUNTING) / 2
        assert first["output"][0]["content"][0]["transcript"] == heard
        # The user's turn carries the cut to the LLM, before the reply to it is made.
        cut_turn = s.services.llm.calls[-1]
        assert cut_turn.cuts[-1] == (s.services.llm.calls[0].header.turn_id, heard)
        assert second["status"] == "completed"

    run(scenario)


def test_a_false_interruption_plays_the_reply_on() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.llm.reply = Reply(text=COUNTING)
            s.speak(0.5, 2.0)
            s.speak(3.5, 3.7)  # a cough: shorter than barge_in_min_speech_ms
            await s.until(8.0)

        [done] = _done(s)
        assert done["status"] == "completed"
        assert done["output"][0]["content"][0]["transcript"] == COUNTING
        assert not s.of("conversation.item.truncated")
        cleared = s.first("input_audio_buffer.cleared")
        assert 3.7 < cleared.at < 4.2
        opened = s.services.llm.calls[1]  # the turn the cough opened, dropped unanswered
        assert opened.stream is not None and opened.stream.cancelled
        assert len(s.of("response.created")) == 1

    run(scenario)


def test_semantic_vad_holds_an_unfinished_turn_and_answers_at_once_when_it_is_finished() -> None:
    async def scenario() -> None:
        semantic = {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}
        async with Scenario("full_duplex", session=semantic) as s:
            s.services.vad.turn_model.scores = [0.2, 0.9]  # the first pause sounds unfinished
            s.services.limits = ReplicaLimits(scores_end_of_turn=False)  # the sound alone
            s.speak(0.5, 1.5)
            s.speak(2.2, 3.0)  # 700 ms later: longer than server_vad's silence would have waited
            await s.until(6.0)

        [created] = s.of("response.created")
        assert 3.1 <= created.at < 3.3  # at the second pause's score, not its longest wait
        [done] = _done(s)
        end_of_turn = done["parley"]["end_of_turn"]
        assert end_of_turn["detection"] == "semantic_vad" and end_of_turn["reason"] == "complete"
        assert end_of_turn["probability"] == pytest.approx(0.9)
        assert len(s.of("input_audio_buffer.committed")) == 1
        assert s.services.llm.calls[-1].header.replaces_turn_id == s.services.llm.calls[0].header.turn_id

    run(scenario)


def test_semantic_vad_ends_a_turn_scored_unfinished_after_its_longest_wait() -> None:
    async def scenario() -> None:
        semantic = {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}
        async with Scenario("full_duplex", session=semantic) as s:
            s.services.vad.turn_model.scores = [0.1]
            s.services.limits = ReplicaLimits(scores_end_of_turn=False)
            s.speak(0.5, 1.5)
            await s.until(5.0)

        [created] = s.of("response.created")
        assert 2.5 <= created.at < 2.8  # eagerness high: 1 s at most after the pause
        assert _done(s)[0]["parley"]["end_of_turn"]["reason"] == "max_wait"

    run(scenario)


def test_a_client_truncate_cuts_the_reply_in_the_llm() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.llm.reply = Reply(text=COUNTING)
            s.speak(0.5, 2.0)
            await s.until(3.5)
            item = s.first("response.output_item.added").data["item"]["id"]
            truncate = {"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 500}
            await s.client(truncate)
            await s.until(4.0)

        truncated = s.first("conversation.item.truncated")
        assert truncated.data["audio_end_ms"] == 500
        assert truncated.data["parley"]["transcript"] == "One two"  # 420 ms of 500 were those two words
        assert s.services.llm.truncations == [(s.services.llm.calls[0].header.turn_id, "One two")]

    run(scenario)


def test_response_cancel_stops_a_live_reply() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.llm.reply = Reply(text=COUNTING, token_ms=400)  # still generating at 3 s
            s.speak(0.5, 2.0)
            await s.until(3.0)
            await s.client({"type": "response.cancel"})
            await s.until(5.0)

        [done] = s.of("response.done")
        assert done.at == pytest.approx(3.0, abs=0.02)
        assert done.data["response"]["status"] == "cancelled"
        assert done.data["response"]["status_details"]["reason"] == "client_cancelled"
        assert s.services.llm.calls[0].stream is not None and s.services.llm.calls[0].stream.cancelled
        assert not _between(s.of("response.output_audio.delta"), done.at, 99)

    run(scenario)


def test_output_audio_buffer_clear_says_which_response_it_cleared() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.llm.reply = Reply(text=COUNTING)
            s.speak(0.5, 2.0)
            await s.until(3.0)
            await s.client({"type": "output_audio_buffer.clear"})
            await s.until(3.5)

        [cleared] = s.of("output_audio_buffer.cleared")
        assert cleared.data["response_id"] == s.first("response.created").data["response"]["id"]

    run(scenario)


def test_the_vad_lost_mid_turn_drops_the_turn_and_the_next_one_works() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.vad.fail_after = 1.0
            s.speak(0.5, 1.1)  # over before the stream is back
            s.speak(3.0, 4.0)
            await s.until(7.0)

        error = s.first("error")
        assert error.data["error"]["code"] == "service_unavailable" and 1.0 <= error.at < 1.1
        dropped = s.services.llm.calls[0]
        assert dropped.stream is not None and dropped.stream.cancelled
        [created] = s.of("response.created")
        assert created.at > 4.0  # the second question's answer
        assert len(s.services.vad.streams) == 2  # reopened
        assert [r["status"] for r in _done(s)] == ["completed"]

    run(scenario)


def test_the_llm_lost_mid_reply_fails_the_response() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.llm.reply = Reply(fail_after_tokens=2)
            s.speak(0.5, 2.0)
            await s.until(4.0)
            s.services.llm.reply = Reply()
            s.speak(5.0, 6.0)
            await s.until(9.0)

        assert s.first("error").data["error"]["code"] == "service_unavailable"
        failed, answered = _done(s)
        assert failed["status"] == "failed" and failed["status_details"]["error"]["code"] == "service_unavailable"
        assert failed["output"][0]["content"][0]["transcript"] == "Rome is"  # what came before the failure
        assert answered["status"] == "completed"

    run(scenario)


def test_the_tts_lost_mid_reply_fails_the_response_with_its_text() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.services.tts.fail_after_pieces = 1
            s.speak(0.5, 2.0)
            await s.until(5.0)

        [failed] = _done(s)
        assert failed["status"] == "failed"
        assert "speech synthesis" in s.first("error").data["error"]["message"]
        assert failed["output"][0]["content"][0]["transcript"] == Reply().text  # the words still came

    run(scenario)


def test_with_interrupt_response_false_the_reply_plays_on_and_the_user_is_answered_after() -> None:
    async def scenario() -> None:
        no_interrupt = {"audio": {"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}}}
        async with Scenario("full_duplex", session=no_interrupt) as s:
            s.services.llm.reply = Reply(text=COUNTING)
            s.speak(0.5, 2.0)
            s.speak(3.5, 4.5)
            await s.until(10.0)

        first, second = _done(s)
        assert first["status"] == "completed"
        assert first["output"][0]["content"][0]["transcript"] == COUNTING
        assert not s.of("conversation.item.truncated")
        assert len(s.services.llm.calls) == 2  # the second turn was heard while the first played
        created = s.of("response.created")[1]
        assert created.at == pytest.approx(s.playback_end(first["id"]), abs=0.05)  # once the first was heard out
        assert second["status"] == "completed"

    run(scenario)


def test_idle_timeout_has_the_model_speak_again_once() -> None:
    async def scenario() -> None:
        idle = {"audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}}}
        async with Scenario("full_duplex", session=idle) as s:
            s.speak(0.5, 2.0)
            await s.until(25.0)

        reply_end = s.playback_end(s.first("response.created").data["response"]["id"])
        [timeout] = s.of("input_audio_buffer.timeout_triggered")  # once a silence: not after its own reply
        assert timeout.at == pytest.approx(reply_end + 5.0, abs=0.05)
        assert len(s.of("response.created")) == 2
        assert s.services.llm.calls[1].header.answer_history

    run(scenario)


def test_a_live_update_of_the_turns_silence_keeps_the_turn_and_applies_at_once() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.speak(0.5, 1.5)
            s.speak(2.2, 3.0)  # a 700 ms pause: the end of the turn under the 500 ms it began with
            await s.until(1.0)
            longer = {"audio": {"input": {"turn_detection": {"silence_duration_ms": 1000}}}}
            await s.client({"type": "session.update", "session": longer})
            await s.until(6.0)

        assert len(s.of("input_audio_buffer.speech_started")) == 1
        [created] = s.of("response.created")
        assert 4.0 <= created.at < 4.1  # 1 s after the second part
        assert len(s.services.vad.streams) == 1  # the VAD stream reports pauses as before
        kept = s.services.llm.calls[-1]
        assert kept.stream is not None and not kept.stream.cancelled
        assert s.services.llm.calls[0].stream is not None  # the first part's answer was only speculative

    run(scenario)


def test_a_live_update_of_the_vads_own_settings_applies_from_the_next_turn() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex") as s:
            s.speak(0.5, 2.0)
            s.speak(6.0, 7.0)
            await s.until(1.0)
            stricter = {"audio": {"input": {"turn_detection": {"threshold": 0.9, "prefix_padding_ms": 100}}}}
            await s.client({"type": "session.update", "session": stricter})
            await s.until(10.0)

        first, second = s.of("input_audio_buffer.speech_started")
        # The turn in progress: the padding it began with; the next: the new padding (within a VAD window).
        assert first.data["audio_start_ms"] == pytest.approx(500 - 300, abs=32)
        assert second.data["audio_start_ms"] == pytest.approx(6000 - 100, abs=32)
        assert len(s.services.vad.streams) == 2  # reopened once the first turn ended
        assert s.services.vad.streams[1].written[0].config.threshold == pytest.approx(0.9)
        assert [r["status"] for r in _done(s)] == ["completed", "completed"]
        assert 2.5 <= s.of("response.created")[0].at < 2.6

    run(scenario)


def test_the_sessions_transcription_language_and_prompt_reach_the_recogniser() -> None:
    async def scenario() -> None:
        transcription = {"audio": {"input": {"transcription": {"language": "en", "prompt": "Parley, Piper"}}}}
        async with Scenario("full_duplex", session=transcription) as s:
            s.speak(0.5, 2.0)
            await s.until(4.0)

        header = s.services.llm.calls[0].header
        assert header.transcription_language == "en"
        assert header.transcription_prompt == "Parley, Piper"

    run(scenario)


SEMANTIC = {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}


def test_unfinished_words_hold_a_turn_the_sound_calls_finished() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex", session=SEMANTIC) as s:
            s.services.vad.turn_model.scores = [0.99, 0.99]  # the sound calls both pauses finished, surely
            s.services.llm.reply = Reply(transcript="I'd like to book a table for.")
            s.services.llm.words_score = lambda words: 1e-8 if words.endswith("for") else 0.01
            s.speak(0.5, 1.5)
            await s.until(2.4)
            s.services.llm.reply = Reply(transcript="I'd like to book a table for two people tonight.")
            s.speak(2.5, 3.5)  # a second later: the rest
            await s.until(6.0)

        assert s.services.llm.scored_words[0] == "I'd like to book a table for"  # its closing "." stripped
        [created] = s.of("response.created")
        assert created.at >= 3.5  # not at the first pause
        [done] = _done(s)
        end_of_turn = done["parley"]["end_of_turn"]
        assert end_of_turn["decided_by"] == "sound and words" and end_of_turn["text_probability"] == 0.01
        assert len(s.of("input_audio_buffer.committed")) == 1

    run(scenario)


def test_held_by_the_words_a_turn_still_ends_after_its_longest_wait() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex", session=SEMANTIC) as s:
            s.services.vad.turn_model.scores = [0.9]
            s.services.llm.words_score = lambda words: 1e-8
            s.speak(0.5, 1.5)
            await s.until(6.0)

        [created] = s.of("response.created")
        assert 4.0 <= created.at < 4.4  # the pause at ~1.65 s, then eagerness auto's 2 s and the margin
        end_of_turn = _done(s)[0]["parley"]["end_of_turn"]
        assert end_of_turn["decided_by"] == "longest wait" and end_of_turn["words"] == "unfinished"

    run(scenario)


def test_unsure_words_and_sound_end_a_turn_after_a_second_of_silence_not_the_longest_wait() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex", session=SEMANTIC) as s:
            s.services.vad.turn_model.scores = [0.3]  # the sound hesitates ...
            s.services.llm.words_score = lambda words: 0.05  # ... and the words could end here, or not
            s.speak(0.5, 1.5)
            await s.until(6.0)

        [created] = s.of("response.created")
        assert 2.6 <= created.at < 2.9  # the pause at ~1.65 s, then auto's second of silence
        end_of_turn = _done(s)[0]["parley"]["end_of_turn"]
        assert end_of_turn["decided_by"] == "silence" and end_of_turn["words"] == "unsure"
        assert end_of_turn["reason"] == "silence"

    run(scenario)


def test_finished_words_end_a_turn_the_sound_is_unsure_of_at_once() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex", session=SEMANTIC) as s:
            s.services.vad.turn_model.scores = [0.2]  # the sound hesitates
            s.services.llm.words_score = lambda words: 0.6
            s.speak(0.5, 1.5)
            await s.until(5.0)

        [created] = s.of("response.created")
        assert created.at < 1.8  # at the pause's scores, not the longest wait
        end_of_turn = _done(s)[0]["parley"]["end_of_turn"]
        assert end_of_turn["reason"] == "words" and end_of_turn["decided_by"] == "words"
        assert end_of_turn["probability"] == pytest.approx(0.2)

    run(scenario)


def test_without_a_words_score_the_sound_decides_alone() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex", session=SEMANTIC) as s:
            s.services.vad.turn_model.scores = [0.9, 0.9]
            s.services.llm.words_score = lambda words: None  # asked, but no score comes
            s.speak(0.5, 1.5)
            s.speak(3.0, 4.0)
            await s.until(7.0)

        first, second = s.of("response.created")
        # Each at its pause, once the answer's first text shows that no score is coming (it would
        # have come before it), not at the longest wait.
        assert first.at < 2.0 and second.at < 4.5
        assert len(s.services.llm.scored_words) == 2
        assert _done(s)[0]["parley"]["end_of_turn"]["decided_by"] == "sound"

    run(scenario)


def test_a_replica_that_cannot_score_words_is_not_asked_to() -> None:
    async def scenario() -> None:
        async with Scenario("full_duplex", session=SEMANTIC) as s:
            s.services.limits = ReplicaLimits(scores_end_of_turn=False)  # its GetLoad says so
            s.services.vad.turn_model.scores = [0.9]
            s.speak(0.5, 1.5)
            await s.until(4.0)

        [created] = s.of("response.created")
        assert created.at < 1.8  # at the pause, by the sound
        assert not any(call.header.score_end_of_turn for call in s.services.llm.calls)
        assert "words" not in _done(s)[0]["parley"]["end_of_turn"]

    run(scenario)
