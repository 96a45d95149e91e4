// The server events the call page reads, as JSDoc types: `tsc --checkJs` (in `make test`) checks
// every field the page uses against them. Only the fields the page reads are listed; the events
// themselves are the OpenAI Realtime API's (the server builds them from the official SDK's types
// and the tests validate them strictly) plus Parley's `parley.*` ones: README, "The public protocol".

/**
 * @typedef {object} ContentPart
 * @property {string} type  "input_text", "input_audio", "output_text", "output_audio", ...
 * @property {string} [text]
 * @property {string | null} [transcript]
 */

/**
 * @typedef {object} Item
 * @property {string} id
 * @property {string} type  "message", "function_call", "function_call_output"
 * @property {"user" | "assistant" | "system"} [role]
 * @property {ContentPart[]} [content]
 */

/**
 * How the server judged the user's turn over (Parley's `response.parley.end_of_turn`).
 * @typedef {object} EndOfTurn
 * @property {string} detection  "server_vad", "semantic_vad" or "client"
 * @property {string} reason
 * @property {number} [probability]
 * @property {number} [scorings]
 */

/**
 * @typedef {object} ResponseObject
 * @property {string} id
 * @property {"in_progress" | "completed" | "cancelled" | "failed" | "incomplete"} status
 * @property {{ type: string, reason?: string, error?: { code?: string, message?: string } } | null} [status_details]
 * @property {Item[]} [output]
 * @property {{ turn_id?: string, timings_ms?: Record<string, number>, end_of_turn?: EndOfTurn }} [parley]
 */

/**
 * @typedef {object} SessionObject
 * @property {{ mode?: string, live_transcripts?: boolean }} [parley]
 */

/**
 * @typedef {object} ErrorDetail
 * @property {string} [type]
 * @property {string} [code]
 * @property {string} [message]
 * @property {string | null} [event_id]
 */

/**
 * Each event type the page handles, and what it carries.
 * @typedef {{
 *   "session.created": { session: SessionObject },
 *   "session.updated": { session: SessionObject },
 *   "input_audio_buffer.speech_started": { item_id: string, audio_start_ms: number },
 *   "input_audio_buffer.speech_stopped": { item_id: string, audio_end_ms: number },
 *   "input_audio_buffer.committed": { item_id: string },
 *   "input_audio_buffer.cleared": {},
 *   "conversation.item.added": { item: Item },
 *   "conversation.item.truncated": { item_id: string, audio_end_ms: number, parley?: { transcript?: string } },
 *   "parley.queue.updated": { position: number, queue_length: number, eta_seconds?: number },
 *   "parley.queue.admitted": { waited_seconds: number },
 *   "parley.input_audio_transcription.partial": { item_id: string, transcript: string },
 *   "conversation.item.input_audio_transcription.delta": { item_id: string, delta: string },
 *   "conversation.item.input_audio_transcription.completed": { item_id: string, transcript: string },
 *   "response.created": { response: ResponseObject },
 *   "response.output_item.added": { item: Item },
 *   "response.output_audio_transcript.delta": { item_id: string, delta: string },
 *   "response.output_text.delta": { item_id: string, delta: string },
 *   "response.output_audio_transcript.done": { item_id: string, transcript: string },
 *   "response.output_text.done": { item_id: string, text: string },
 *   "response.done": { response: ResponseObject },
 *   "output_audio_buffer.started": { response_id: string },
 *   "output_audio_buffer.stopped": { response_id: string },
 *   "output_audio_buffer.cleared": { response_id: string },
 *   "error": { error: ErrorDetail },
 * }} ServerEvents
 */

/**
 * A handler for each event type the page handles.
 * @typedef {{ [K in keyof ServerEvents]: (event: ServerEvents[K]) => void }} EventHandlers
 */

export {};
