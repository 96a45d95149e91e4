// The transcript: one entry per turn, drawn from the server's events as they arrive (user
// speech and its transcription, typed messages, the assistant's streamed reply).

import { requestResponse, send } from "./channel.js";
import { restingActivity, setActivity, showError } from "./page.js";
import { call, isVoiceMode, settings, stats, ui } from "./state.js";

export const entries = new Map(); // item id -> entry

export function resetConversation() {
  entries.clear();
  followingTranscript = true;
  ui.transcript.replaceChildren();
  ui.emptyState.hidden = false;
}

export function createEntry(id, role) {
  const li = document.createElement("li");
  li.className = `entry ${role}`;
  li.dataset.itemId = id;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Parley";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const text = document.createElement("p");
  text.className = "text";
  const typing = document.createElement("span");
  typing.className = "typing";
  typing.setAttribute("aria-hidden", "true");
  typing.append(document.createElement("i"), document.createElement("i"), document.createElement("i"));
  const note = document.createElement("span");
  note.className = "note";
  bubble.append(text, typing, note);
  li.append(who, bubble);

  ui.transcript.append(li);
  ui.emptyState.hidden = true;
  followTranscript();

  const entry = { id, role, li, bubble, textEl: text, typingEl: typing, noteEl: note, text: "", done: false, committed: false };
  entries.set(id, entry);
  return entry;
}

// The transcript follows new text while the person is at its end, and stays put once they
// scroll up to read something.
let followingTranscript = true;

function isScrolledToBottom() {
  const box = ui.transcript;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
}

function followTranscript() {
  if (followingTranscript) ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

export function watchTranscriptScroll() {
  ui.transcript.addEventListener("scroll", () => (followingTranscript = isScrolledToBottom()), { passive: true });
  // The box shrinks when the composer grows (an attachment, the camera): keep the end in view.
  new ResizeObserver(followTranscript).observe(ui.transcript);
}

export function userEntry(id) {
  if (!id) return null;
  return entries.get(id) ?? renderEntry(createEntry(id, "user"));
}

export function assistantEntry(id) {
  if (!id) return null;
  return entries.get(id) ?? renderEntry(createEntry(id, "assistant"));
}

// Draw an entry from its state. Assistant text is held back until the reply is complete when
// streaming is off.
export function renderEntry(entry) {
  const showText = entry.role === "user" || entry.done || settings.streaming;
  const text = showText ? entry.text : "";
  if (entry.textEl.textContent !== text) entry.textEl.textContent = text;
  entry.typingEl.hidden = entry.done || text !== "";
  entry.li.setAttribute("aria-busy", String(!entry.done)); // screen readers read it once complete
  entry.li.classList.toggle("pending", !entry.done);
  followTranscript();
  return entry;
}

function setNote(entry, note, kind = "") {
  entry.noteEl.textContent = note;
  entry.noteEl.dataset.kind = kind;
}

export function addImage(entry, dataUrl) {
  const img = document.createElement("img");
  img.className = "sent-image";
  img.src = dataUrl;
  img.alt = "Image you sent";
  img.addEventListener("load", followTranscript, { once: true });
  entry.bubble.prepend(img);
}

/** @param {import("./events.js").Item} item */
export function onItemAdded(item) {
  if (!item?.id) return;
  if (item.role === "assistant") {
    assistantEntry(item.id);
    return;
  }
  if (item.role !== "user") return;
  const entry = userEntry(item.id);
  entry.committed = true;
  const texts = (item.content ?? []).filter((part) => part.type === "input_text").map((part) => part.text);
  const hasAudio = (item.content ?? []).some((part) => part.type === "input_audio");
  if (!hasAudio && !entry.done) {
    // A typed message (ours already shows it; this covers messages added by other means).
    if (!entry.text) entry.text = texts.join("\n");
    entry.done = true;
    renderEntry(entry);
  }
}

// The words so far while the person speaks (Parley's live transcript): the whole text, revisable.
export function onUserPartial(itemId, text) {
  const entry = userEntry(itemId);
  if (!entry || entry.done) return;
  entry.live = true;
  entry.text = text ?? "";
  renderEntry(entry);
}

export function onUserTranscript(itemId, text, final) {
  const entry = userEntry(itemId);
  if (!entry) return;
  if (!final && entry.live) return; // the live transcript already shows these words
  entry.text = final ? (text ?? "") : entry.text + (text ?? "");
  if (final && !entry.text.trim()) {
    onNothingHeard(entry);
    return;
  }
  entry.done ||= final;
  renderEntry(entry);
}

// Speech with no words in it. With server VAD that is noise (a cough, a door): drop it rather
// than fill the transcript with empty turns. After push-to-talk, say so.
function onNothingHeard(entry) {
  if (isVoiceMode(settings.mode)) {
    removeEntry(entry);
    if (!call.activeResponseId && !call.assistantSpeaking) setActivity(restingActivity());
    return;
  }
  entry.done = true;
  setNote(entry, "No words recognised", "muted");
  renderEntry(entry);
}

function removeEntry(entry) {
  entry.li.remove();
  entries.delete(entry.id);
  ui.emptyState.hidden = entries.size > 0;
}

// A mode change ends any turn the server was still hearing (not yet committed); the server
// sends nothing more for it.
export function settlePendingUserEntries() {
  for (const entry of [...entries.values()]) {
    if (entry.role !== "user" || entry.done || entry.committed) continue;
    if (entry.text.trim()) {
      entry.done = true;
      renderEntry(entry);
    } else {
      removeEntry(entry);
    }
  }
}

export function onAssistantDelta(itemId, delta) {
  const entry = assistantEntry(itemId);
  if (!entry || !delta) return;
  entry.text += delta;
  renderEntry(entry);
}

export function onAssistantTextDone(itemId, text) {
  const entry = assistantEntry(itemId);
  if (!entry) return;
  if (typeof text === "string") entry.text = text;
  entry.done = true;
  renderEntry(entry);
}

/** @param {import("./events.js").ServerEvents["response.created"]} event */
export function onResponseCreated(event) {
  call.activeResponseId = event.response?.id ?? null;
  call.responseRequested = false;
  if (!call.assistantSpeaking) setActivity("thinking");
  if (call.pendingCreate && call.activeResponseId) {
    // The person sent something new while this response was on its way: stop it.
    send({ type: "response.cancel", response_id: call.activeResponseId });
  }
}

/** @param {import("./events.js").ResponseObject} response */
export function onResponseDone(response) {
  const item = response?.output?.[0];
  const entry = item?.id ? assistantEntry(item.id) : null;
  if (entry) {
    const part = item.content?.[0];
    const finalText = part?.transcript ?? part?.text;
    if (typeof finalText === "string" && (finalText || entry.truncated)) entry.text = finalText;
    entry.done = true;
    describeOutcome(entry, response);
    renderEntry(entry);
  }
  if (response?.status === "failed") {
    showError(response.status_details?.error?.message || "The reply failed on the server.");
  }
  call.activeResponseId = null;
  call.responseRequested = false;
  if (!call.assistantSpeaking) setActivity(restingActivity());
  if (call.pendingCreate) {
    call.pendingCreate = false;
    requestResponse();
  }
}

function describeOutcome(entry, response) {
  const status = response?.status;
  if (entry.truncated || response?.status_details?.reason === "turn_detected") setNote(entry, "Interrupted", "muted");
  else if (status === "cancelled") setNote(entry, "Stopped", "muted");
  else if (status === "failed") setNote(entry, "This reply failed", "error");
  else if (status === "incomplete") setNote(entry, "Cut short at the length limit", "muted");
  else if (!entry.text.trim()) setNote(entry, "No reply text", "muted");
}

// The person spoke over a reply: it now reads as far as they heard it.
/** @param {import("./events.js").ServerEvents["conversation.item.truncated"]} event */
export function onItemTruncated(event) {
  const entry = assistantEntry(event.item_id);
  const heard = event.parley?.transcript;
  stats.truncations.push({ item_id: event.item_id, audio_end_ms: event.audio_end_ms, transcript: heard ?? null });
  if (!entry) return;
  if (typeof heard === "string") entry.text = heard;
  entry.truncated = true;
  entry.li.classList.add("truncated");
  setNote(entry, "Interrupted", "muted");
  renderEntry(entry);
}

// When a call ends mid-reply, stop showing typing dots.
export function finishOpenEntries() {
  for (const entry of entries.values()) {
    if (entry.done) continue;
    entry.done = true;
    if (!entry.text && !entry.noteEl.textContent) setNote(entry, "Interrupted", "muted");
    renderEntry(entry);
  }
}
