// Chat: typed messages, images (a file or a camera photo), and push-to-talk.

import { cancelReply, newId, requestResponse, send } from "./channel.js";
import { cameraStream, closeCamera, openCamera, toJpegDataUrl } from "./media.js";
import { isConnected, refreshControls, refreshMicState, restingActivity, setActivity, showError } from "./page.js";
import { attachment, call, later, settings, storeAttachment, ui } from "./state.js";
import { addImage, createEntry, renderEntry } from "./transcript.js";

const MIN_TALK_MS = 250; // shorter presses are taps, not speech (the server wants >= 100 ms)
const TALK_TAIL_MS = 300; // keep the mic open after release: the last words are still in flight

function sendMessage() {
  const text = ui.textInput.value.trim();
  if (!isConnected() || (!text && !attachment)) return;
  const content = [];
  if (text) content.push({ type: "input_text", text });
  if (attachment) content.push({ type: "input_image", image_url: attachment.dataUrl });
  addUserMessage(content, text);
  requestResponse();
  ui.textInput.value = "";
  autosizeTextInput();
  refreshControls();
  ui.textInput.focus(); // the Send button just became disabled; keep typing where it was
}

// Add a user message to the conversation, and show it at once (the server echoes it with the
// id we chose, so it is not shown twice).
function addUserMessage(content, text) {
  const id = newId("item");
  const entry = createEntry(id, "user");
  entry.text = text;
  entry.done = true;
  if (attachment) addImage(entry, attachment.dataUrl);
  renderEntry(entry);
  send({ type: "conversation.item.create", item: { id, type: "message", role: "user", content } });
  clearAttachment();
}

export function applyMicForMode() {
  if (!call?.micTrack) return;
  call.micTrack.enabled = settings.mode !== "chat" || Boolean(call.talking);
  refreshMicState();
}

function canTalk() {
  return isConnected() && settings.mode === "chat" && Boolean(call.micTrack);
}

function startTalking() {
  if (!canTalk() || call.talking) return;
  flushTalkTail();
  cancelReply(); // talking over the assistant stops it
  call.talking = { startedAt: performance.now() };
  send({ type: "input_audio_buffer.clear" }); // drop the silence sent while the mic was muted
  call.micTrack.enabled = true;
  setTalkUi(true);
  setActivity("hearing");
  refreshMicState();
}

export function stopTalking() {
  if (!call?.talking) return;
  const held = performance.now() - call.talking.startedAt;
  call.talking = null;
  setTalkUi(false);
  if (held < MIN_TALK_MS) {
    call.micTrack.enabled = false;
    send({ type: "input_audio_buffer.clear" });
    setActivity(restingActivity());
    ui.talkLabel.textContent = "Hold longer to talk";
    later(call, 1500, () => setTalkUi(Boolean(call?.talking)));
    refreshMicState();
    return;
  }
  setActivity("thinking");
  // The commit goes over the data channel and can overtake the last audio packets, so keep the
  // mic open a moment longer before committing.
  const current = call;
  current.talkTail = later(current, TALK_TAIL_MS, () => commitTalk(current));
}

function flushTalkTail() {
  if (call?.talkTail == null) return;
  clearTimeout(call.talkTail);
  call.timers.delete(call.talkTail);
  commitTalk(call);
}

function commitTalk(current) {
  current.talkTail = null;
  if (call !== current) return;
  if (!current.talking) current.micTrack.enabled = false;
  refreshMicState();
  if (attachment) addUserMessage([{ type: "input_image", image_url: attachment.dataUrl }], "");
  send({ type: "input_audio_buffer.commit" });
  requestResponse();
}

export function setTalkUi(active) {
  ui.talk.classList.toggle("active", active);
  ui.talk.setAttribute("aria-pressed", String(active));
  ui.talkLabel.textContent = active ? "Release to send" : "Hold to talk";
}

function bindTalkButton() {
  const talk = ui.talk;
  talk.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault(); // no text selection or focus juggling while held
    talk.setPointerCapture?.(event.pointerId);
    talk.focus({ preventScroll: true });
    startTalking();
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    talk.addEventListener(type, stopTalking);
  }
  talk.addEventListener("contextmenu", (event) => event.preventDefault()); // long press on touch
  talk.addEventListener("keydown", (event) => {
    if (event.key !== " " && event.key !== "Enter") return;
    event.preventDefault();
    if (!event.repeat) startTalking();
  });
  talk.addEventListener("keyup", (event) => {
    if (event.key !== " " && event.key !== "Enter") return;
    event.preventDefault();
    stopTalking();
  });
  talk.addEventListener("blur", stopTalking);
  // Space held anywhere that is not a control also talks, as in most push-to-talk apps.
  document.addEventListener("keydown", (event) => {
    if (event.key !== " " || event.repeat || !isPlainFocus(event.target) || !canTalk()) return;
    event.preventDefault();
    startTalking();
  });
  document.addEventListener("keyup", (event) => {
    if (event.key === " " && call?.talking && document.activeElement !== talk) stopTalking();
  });
}

function isPlainFocus(target) {
  return target === document.body || target === document.documentElement || target?.id === "conversation";
}

// Images: downscaled to JPEG (media.js) before they are attached.

function setAttachment(dataUrl, label) {
  storeAttachment({ dataUrl, label });
  ui.attachmentThumb.src = dataUrl;
  ui.attachmentLabel.textContent = label;
  ui.attachment.hidden = false;
  refreshControls();
}

function clearAttachment() {
  storeAttachment(null);
  ui.attachment.hidden = true;
  ui.attachmentThumb.removeAttribute("src");
  refreshControls();
}

async function attachFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    showError(`"${file.name}" is not an image.`);
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    showError(`"${file.name}" could not be read as an image. Try a JPEG or PNG file.`);
    return;
  }
  try {
    setAttachment(toJpegDataUrl(bitmap, bitmap.width, bitmap.height), file.name);
  } finally {
    bitmap.close();
  }
  ui.textInput.focus();
}

function takeSnapshot() {
  const video = ui.cameraVideo;
  if (!video.videoWidth) {
    showError("The camera has not delivered a picture yet; try again in a moment.");
    return;
  }
  setAttachment(toJpegDataUrl(video, video.videoWidth, video.videoHeight), "Camera photo");
  closeCamera();
  ui.textInput.focus();
}

function autosizeTextInput() {
  const input = ui.textInput;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

// The composer's controls, and the talk button.
export function bindChat() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  ui.textInput.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter while composing (IME) is not a send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });
  ui.textInput.addEventListener("input", () => {
    autosizeTextInput();
    refreshControls();
  });

  ui.attach.addEventListener("click", () => ui.fileInput.click());
  ui.fileInput.addEventListener("change", () => {
    attachFile(ui.fileInput.files?.[0]);
    ui.fileInput.value = ""; // choosing the same file again still fires "change"
  });
  ui.attachmentRemove.addEventListener("click", () => {
    clearAttachment();
    ui.textInput.focus();
  });
  ui.cameraButton.addEventListener("click", () => (cameraStream ? closeCamera() : openCamera()));
  ui.snap.addEventListener("click", takeSnapshot);
  ui.cameraCancel.addEventListener("click", closeCamera);
  ui.camera.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeCamera();
  });

  bindTalkButton();
}
