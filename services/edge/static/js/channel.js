// Events to the server: OpenAI Realtime (GA) events sent as JSON text on the call's data
// channel "oai-events". The events: README, "The public protocol".

import { isConnected } from "./page.js";
import { call, isVoiceMode, settings } from "./state.js";

export function newId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function send(event) {
  if (!isConnected()) return false;
  const withId = { event_id: newId("evt"), ...event };
  call.dc.send(JSON.stringify(withId));
  return withId.event_id;
}

function sessionConfig() {
  const mode = settings.mode;
  const voice = mode !== "chat" || settings.spoken;
  let turnDetection = null; // chat: the page commits turns itself (send, or release of the talk button)
  if (isVoiceMode(mode)) {
    turnDetection =
      settings.turnEnd === "semantic_vad"
        ? { type: "semantic_vad", eagerness: "auto", threshold: settings.vadThreshold, prefix_padding_ms: 300 }
        : {
            type: "server_vad",
            threshold: settings.vadThreshold,
            silence_duration_ms: settings.vadSilenceMs,
            prefix_padding_ms: 300,
          };
  }
  return {
    type: "realtime",
    output_modalities: [voice ? "audio" : "text"],
    audio: { input: { turn_detection: turnDetection } },
    // The words as they are heard (parley.input_audio_transcription.partial), before the turn ends.
    parley: { mode, live_transcripts: true },
  };
}

export function sendSessionUpdate() {
  const id = send({ type: "session.update", session: sessionConfig() });
  if (id) call.sessionUpdates.add(id);
}

// Ask for a reply to what was just added. One response at a time: a new request while the
// assistant is still answering stops that answer first (the person has moved on).
export function requestResponse() {
  if (!call.activeResponseId && call.assistantSpeaking) {
    send({ type: "output_audio_buffer.clear" }); // the last answer is still playing: cut it short
  }
  if (call.activeResponseId || call.responseRequested) {
    call.pendingCreate = true;
    if (call.activeResponseId) send({ type: "response.cancel", response_id: call.activeResponseId });
    return;
  }
  call.responseRequested = true;
  const id = send({ type: "response.create" });
  if (id) call.requestIds.add(id);
}

// Stop the assistant: cancel the response being written, or (once it is written) silence the
// audio still playing.
export function cancelReply() {
  if (!call) return;
  if (call.activeResponseId) {
    call.pendingCreate = false;
    send({ type: "response.cancel", response_id: call.activeResponseId });
  } else if (call.assistantSpeaking) {
    send({ type: "output_audio_buffer.clear" });
  }
}
