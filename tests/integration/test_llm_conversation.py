"""The LLM service with its bundled models: spoken and typed turns, sessions, images."""

import asyncio
import io
import uuid

import grpc
import numpy as np
import pytest
from parley.v1 import conversation_pb2, conversation_pb2_grpc
from PIL import Image

from services.llm.backends.transformers_lm import BUNDLED_GGUF
from services.llm.servicer import CANNOT_SEE_IMAGES
from services.llm.settings import DEFAULT_SYSTEM_PROMPT
from tests.support import speech
from tests.support.llm_client import END, ask, audio_chunks, header, image, respond, text
from tests.support.processes import SHARED_LLM_MAX_SESSIONS

QUESTION = "What is the capital of France?"


def new_session() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    path = BUNDLED_GGUF.verified()
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def prompt_tokens(tokenizer, turns: list[tuple[str, str | None]], system: str = DEFAULT_SYSTEM_PROMPT) -> int:
    """Tokens of the prompt a session with these (user, reply) turns should send to the model."""
    messages = [{"role": "system", "content": system}]
    for user, reply in turns:
        messages.append({"role": "user", "content": user})
        if reply is not None:
            messages.append({"role": "assistant", "content": reply})
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(rendered, add_special_tokens=False).input_ids)


def system_prefix_tokens(tokenizer, system: str = DEFAULT_SYSTEM_PROMPT) -> int:
    """Tokens of the system prompt alone: what every new session has in its cache already."""
    rendered = tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False)
    return len(tokenizer(rendered, add_special_tokens=False).input_ids)


@pytest.mark.parametrize("rate", [16000, 24000])
async def test_spoken_question_is_transcribed_and_answered(llm_channel: grpc.aio.Channel, rate: int) -> None:
    # The bundled voice: the recogniser's per-clip slips differ between its paths (espeak's
    # robotic "capital of France" is "capital and France" to the length-following one), and the
    # recognition tests measure its accuracy on a set; here it is the turn that is checked.
    question = speech.resample(speech.piper_voice(QUESTION), speech.VOICE_RATE, rate)
    audio, _ = speech.compose([0.3, question, 0.6], rate)
    result = await respond(llm_channel, [header(new_session()), *audio_chunks(audio, rate), END])
    assert result.transcript is not None
    assert "capital of france" in result.transcript.lower()
    assert "Paris" in result.reply
    assert result.done is not None
    assert result.done.finish_reason == conversation_pb2.FINISH_REASON_STOP
    assert result.done.usage.input_audio_seconds == pytest.approx(len(audio) / rate, abs=0.01)
    assert result.done.reply_text == result.reply
    assert {"asr", "first_token", "prefill", "generation"} <= set(result.done.timings.durations_ms)


async def test_typed_question_gets_the_same_answer_every_time(llm_channel: grpc.aio.Channel) -> None:
    first = await ask(llm_channel, new_session(), QUESTION)
    second = await ask(llm_channel, new_session(), QUESTION)
    assert "Paris" in first.reply
    assert first.reply == second.reply
    assert first.transcript is None  # no audio, no transcript


async def test_later_turns_carry_the_history_and_reuse_the_cache(llm_channel, tokenizer) -> None:
    session = new_session()
    first = await ask(llm_channel, session, "My favourite colour is green.", generation={"max_output_tokens": 24})
    second = await ask(llm_channel, session, "What is my favourite colour?", generation={"max_output_tokens": 24})
    assert first.accepted.history_turns == 0 and second.accepted.history_turns == 1
    expected = prompt_tokens(
        tokenizer, [("My favourite colour is green.", first.reply), ("What is my favourite colour?", None)]
    )
    assert second.done.usage.input_tokens == expected
    # Everything up to (at least) the first turn's prompt came from the session's cache.
    assert second.done.usage.cached_input_tokens >= first.done.usage.input_tokens
    assert first.done.usage.cached_input_tokens == system_prefix_tokens(tokenizer)


async def test_sessions_never_see_each_other(llm_channel, tokenizer) -> None:
    talkative, other = new_session(), new_session()
    await ask(llm_channel, talkative, "Remember the word pineapple.", generation={"max_output_tokens": 8})
    fresh = await ask(llm_channel, other, "What word did I ask you to remember?", generation={"max_output_tokens": 8})
    assert fresh.accepted.history_turns == 0
    assert fresh.done.usage.input_tokens == prompt_tokens(tokenizer, [("What word did I ask you to remember?", None)])
    assert fresh.done.usage.cached_input_tokens == system_prefix_tokens(tokenizer)


async def test_reset_and_end_session(llm_channel: grpc.aio.Channel, tokenizer) -> None:
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    session = new_session()
    await ask(llm_channel, session, "Hello!", generation={"max_output_tokens": 4})
    await stub.ResetSession(conversation_pb2.ResetSessionRequest(session_id=session))
    after_reset = await ask(llm_channel, session, "Hello again!", generation={"max_output_tokens": 4})
    assert after_reset.accepted.history_turns == 0
    assert after_reset.done.usage.cached_input_tokens == system_prefix_tokens(tokenizer)
    load = await stub.GetLoad(conversation_pb2.GetLoadRequest())
    assert load.active_sessions >= 1 and load.max_sessions == SHARED_LLM_MAX_SESSIONS
    assert load.max_output_tokens == 2048, "the limit the edge checks max_output_tokens by"
    assert list(load.transcription_languages) == ["en"], "the bundled recogniser's (the edge checks sessions by it)"
    assert load.scores_end_of_turn, "the transformers engine scores words (the edge asks turns for it by this)"
    await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=session))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=session))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert session in (error.value.details() or "")
    after = await stub.GetLoad(conversation_pb2.GetLoadRequest())
    assert after.active_sessions == load.active_sessions - 1


async def test_truncate_reply_replaces_what_the_history_keeps(llm_channel, tokenizer) -> None:
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    session = new_session()
    first = await ask(llm_channel, session, QUESTION, turn_id="t1")
    assert len(first.reply) > 10
    heard = first.reply[:10]
    await stub.TruncateReply(conversation_pb2.TruncateReplyRequest(session_id=session, turn_id="t1", heard_text=heard))
    second = await ask(llm_channel, session, "Go on.", generation={"max_output_tokens": 4})
    assert second.done.usage.input_tokens == prompt_tokens(tokenizer, [(QUESTION, heard), ("Go on.", None)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.TruncateReply(conversation_pb2.TruncateReplyRequest(session_id=session, turn_id="nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), (30, 120, 200), np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_a_text_only_model_says_plainly_it_cannot_see_images(llm_channel: grpc.aio.Channel) -> None:
    with_question = await respond(llm_channel, [header(new_session()), image(jpeg()), text(QUESTION), END])
    assert with_question.deltas[0] == CANNOT_SEE_IMAGES
    assert "Paris" in with_question.reply  # the text part is still answered
    image_only = await respond(llm_channel, [header(new_session()), image(jpeg()), END])
    assert image_only.reply == CANNOT_SEE_IMAGES
    assert image_only.done.finish_reason == conversation_pb2.FINISH_REASON_STOP


async def test_transcribe_only_adds_to_history_without_a_reply(llm_channel: grpc.aio.Channel) -> None:
    session = new_session()
    spoken = speech.trim(speech.speak("Please note that I like tea.", 16000), 16000)
    audio, _ = speech.compose([0.2, spoken, 0.4], 16000)
    noted = await respond(llm_channel, [header(session, transcribe_only=True), *audio_chunks(audio), END])
    assert noted.transcript and "please note that i like" in noted.transcript.lower()
    assert noted.deltas == [] and noted.done.finish_reason == conversation_pb2.FINISH_REASON_NO_REPLY
    later = await ask(llm_channel, session, "Thanks.", generation={"max_output_tokens": 4})
    assert later.accepted.history_turns == 1


async def test_noise_only_audio_gets_no_reply(llm_channel: grpc.aio.Channel) -> None:
    noise = speech.white_noise(16000 * 2, 0.001, seed=4)
    result = await respond(llm_channel, [header(new_session()), *audio_chunks(noise), END])
    assert result.transcript == ""
    assert result.deltas == []
    assert result.done.finish_reason == conversation_pb2.FINISH_REASON_NO_REPLY


async def test_a_turn_can_replace_one_begun_too_early(llm_channel: grpc.aio.Channel) -> None:
    """An edge that answered at a tentative pause re-sends the whole utterance in a turn that
    replaces the early one: the early turn leaves nothing in the history."""
    session = f"replace-{uuid.uuid4().hex[:8]}"
    early = await ask(llm_channel, session, "I would like to book a table", turn_id="early")
    assert early.accepted is not None and early.accepted.history_turns == 0
    whole = await ask(
        llm_channel,
        session,
        "I would like to book a table for two people tonight",
        turn_id="whole",
        replaces_turn_id="early",
    )
    assert whole.accepted is not None and whole.accepted.history_turns == 0, "the early turn was dropped"
    after = await ask(llm_channel, session, "Thank you.", turn_id="after")
    assert after.accepted is not None and after.accepted.history_turns == 1


async def test_a_transcription_prompt_spells_the_names_it_gives(llm_channel: grpc.aio.Channel) -> None:
    """TurnHeader.transcription_prompt (a session's transcription prompt and keywords) reaches
    the recogniser: an Irish name the bundled Whisper writes "Shubon" unprompted comes out as given."""
    question = speech.resample(speech.piper_voice("Please send it to Siobhan Nakamura."), speech.VOICE_RATE, 16000)
    audio, _ = speech.compose([0.3, question, 0.6], 16000)
    prompted = await respond(
        llm_channel,
        [
            header(new_session(), transcription_prompt="Siobhan Nakamura", transcribe_only=True),
            *audio_chunks(audio),
            END,
        ],
    )
    assert prompted.transcript is not None and "Siobhan" in prompted.transcript, prompted.transcript


async def test_the_end_of_turn_score_reads_the_words(llm_channel: grpc.aio.Channel) -> None:
    """ScoreEndOfTurn: the words "…a table for" could not end a sentence; the whole sentence or
    question far more likely could (bf16 moves the exact figures with the CPU, not this order).
    The words as the edge sends them: the recogniser's closing punctuation stripped."""
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    for unfinished, finished in [
        ("I'd like to book a table for", "I'd like to book a table for two people tonight"),
        ("What is the capital of", "What is the capital of France"),
    ]:
        cut = await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript=unfinished))
        whole = await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript=finished))
        assert cut.probability < 0.01 and whole.probability > 10 * max(cut.probability, 1e-4), (cut, whole)
        assert cut.computed_tokens > 0 and cut.inference_ms > 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript="  "))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_turn_that_asks_has_its_words_scored_before_its_first_text(llm_channel: grpc.aio.Channel) -> None:
    """TurnHeader.score_end_of_turn: the words' score, read off the reply's own prompt, comes
    before the reply's first text and is the score ScoreEndOfTurn gives the same words (their
    closing punctuation stripped); the reply and what it computed are those of a turn that did
    not ask. A turn without a reply (transcribe_only) is scored on its own."""
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    probabilities = {}
    for said in ("I'd like to book a table for.", "What is the capital of France?"):
        generation = {"max_output_tokens": 12}
        scored = await ask(llm_channel, new_session(), said, score_end_of_turn=True, generation=generation)
        unscored = await ask(llm_channel, new_session(), said, generation=generation)
        alone = await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript=said.rstrip(".?")))
        assert scored.end_of_turn is not None and scored.deltas_before_score == 0 and scored.deltas
        assert unscored.end_of_turn is None
        ratio = scored.end_of_turn.probability / alone.probability
        assert 1 / 1.5 < ratio < 1.5, (scored.end_of_turn, alone)  # bf16: the same within rounding
        assert scored.reply == unscored.reply
        assert scored.done.usage.input_tokens == unscored.done.usage.input_tokens
        probabilities[said] = scored.end_of_turn.probability
    cut, whole = probabilities.values()
    assert cut < 0.01 and whole > 10 * max(cut, 1e-4), probabilities
    transcribed = await ask(
        llm_channel, new_session(), "What is the capital of", score_end_of_turn=True, transcribe_only=True
    )
    assert transcribed.end_of_turn is not None and transcribed.end_of_turn.probability < 0.01
    assert not transcribed.deltas


async def test_a_hesitation_alone_never_ends_a_turn_and_costs_no_model_time(llm_channel: grpc.aio.Channel) -> None:
    """A hesitation alone ("Um,") says nothing yet: its score is 0 without the model (the 135M
    model gives "Um" an end-of-sentence probability like a real answer's, ~0.016), by
    ScoreEndOfTurn and before a reply's first text alike; words that begin with one are words."""
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    alone = await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript="Um,"))
    assert alone.probability == 0.0 and alone.computed_tokens == 0
    scored = await ask(
        llm_channel, new_session(), "Uh, um.", score_end_of_turn=True, generation={"max_output_tokens": 8}
    )
    assert scored.end_of_turn is not None and scored.end_of_turn.probability == 0.0
    assert scored.deltas_before_score == 0 and scored.deltas  # the held answer is still begun
    begun = await stub.ScoreEndOfTurn(
        conversation_pb2.ScoreEndOfTurnRequest(transcript="Um, what is the capital of France")
    )
    assert begun.computed_tokens > 0 and begun.probability > 0


async def test_scoring_a_pause_leaves_the_session_exactly_as_it_was(llm_channel: grpc.aio.Channel) -> None:
    """Two sessions with the same first turn; one has its pause scored before the second turn.
    The second turns are the same: same prompt, same tokens from the cache, same reply."""
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    scored, plain = new_session(), new_session()
    for session in (scored, plain):
        await ask(llm_channel, session, QUESTION, generation={"max_output_tokens": 12})
    score = await stub.ScoreEndOfTurn(
        conversation_pb2.ScoreEndOfTurnRequest(session_id=scored, transcript="And what about")
    )
    assert score.computed_tokens < 20, "the session's cache covered the history"
    follow_up = "And what about Italy?"
    after_score = await ask(llm_channel, scored, follow_up, generation={"max_output_tokens": 12})
    after_nothing = await ask(llm_channel, plain, follow_up, generation={"max_output_tokens": 12})
    assert after_score.accepted.history_turns == after_nothing.accepted.history_turns == 1
    assert after_score.done.usage.input_tokens == after_nothing.done.usage.input_tokens
    assert after_score.done.usage.cached_input_tokens == after_nothing.done.usage.cached_input_tokens
    assert after_score.reply == after_nothing.reply


async def test_scoring_while_the_session_answers_does_not_change_the_answer(llm_channel: grpc.aio.Channel) -> None:
    """A pause is scored while an answer begun at it is being generated (the edge answers early):
    the scores run between the answer's steps and the answer is the one it would have been."""
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    scored, plain = new_session(), new_session()
    for session in (scored, plain):
        await ask(llm_channel, session, "My favourite colour is green.", generation={"max_output_tokens": 8})

    async def scores() -> list[float]:
        request = conversation_pb2.ScoreEndOfTurnRequest(session_id=scored, transcript="Tell me about the history of")
        return [(await stub.ScoreEndOfTurn(request)).probability for _ in range(6)]

    question = "Tell me about the history of Paris."
    answer, probabilities = await asyncio.gather(
        ask(llm_channel, scored, question, generation={"max_output_tokens": 40}), scores()
    )
    unscored = await ask(llm_channel, plain, question, generation={"max_output_tokens": 40})
    assert len(set(round(p, 4) for p in probabilities)) == 1, "the same words, the same score, every time"
    assert answer.reply == unscored.reply


async def test_words_scored_as_they_grow_compute_only_what_was_added(llm_channel: grpc.aio.Channel) -> None:
    """The session keeps its last score's own cache: the next score of the same words and more
    computes only the words added, and comes out as a score from scratch does."""
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    growing, fresh = new_session(), new_session()
    for session in (growing, fresh):
        await ask(llm_channel, session, "My favourite colour is green.", generation={"max_output_tokens": 8})
    partial = conversation_pb2.ScoreEndOfTurnRequest(session_id=growing, transcript="What is the capital of")
    first = await stub.ScoreEndOfTurn(partial)
    whole = await stub.ScoreEndOfTurn(
        conversation_pb2.ScoreEndOfTurnRequest(session_id=growing, transcript="What is the capital of France?")
    )
    scratch = await stub.ScoreEndOfTurn(
        conversation_pb2.ScoreEndOfTurnRequest(session_id=fresh, transcript="What is the capital of France?")
    )
    assert whole.computed_tokens <= 3 < first.computed_tokens, (first.computed_tokens, whole.computed_tokens)
    assert scratch.computed_tokens == first.computed_tokens + whole.computed_tokens
    assert abs(whole.probability - scratch.probability) <= 0.05 * max(scratch.probability, 0.01), (whole, scratch)
