// State shared by the call page's modules: the page's elements, the stats the e2e test reads,
// the settings remembered in this browser, the current call and the attached image.
//
// The e2e driver (tests/e2e/drive_call.mjs) reads `window.parleyStats` and the element ids used
// here; keep them stable.
//
// `call` and `attachment` change as the page runs: other modules read them through the import
// (an ES module binding is live) and change them only through setCall / storeAttachment.

const SETTINGS_KEY = "parley.settings";

/**
 * The page's element with this id, of this kind: a page whose markup lost or changed it fails
 * here, at load, and not later at the first use.
 * @template {Element} T
 * @param {string} id
 * @param {{ new (): T; name: string }} kind
 * @returns {T}
 */
function element(id, kind) {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`the page has no ${kind.name} with id ${id}`);
  return found;
}

/**
 * @param {string} selector
 * @returns {HTMLElement}
 */
function first(selector) {
  const found = document.querySelector(selector);
  if (!(found instanceof HTMLElement)) throw new Error(`the page has no element ${selector}`);
  return found;
}
export const ui = {
  mode: element("mode", HTMLSelectElement),
  modeHint: element("mode-hint", HTMLElement),
  tokenField: element("token-field", HTMLElement),
  token: element("token", HTMLInputElement),
  start: element("start", HTMLButtonElement),
  stop: element("stop", HTMLButtonElement),
  status: element("status", HTMLElement),
  statusPill: first(".status-pill"),
  error: element("error", HTMLElement),
  queue: element("queue", HTMLElement),
  errorBanner: first(".error-banner"),
  errorDismiss: element("error-dismiss", HTMLButtonElement),
  activity: element("activity", HTMLElement),
  cancelReply: element("cancel-reply", HTMLButtonElement),
  transcript: element("transcript", HTMLOListElement),
  emptyState: element("empty-state", HTMLElement),
  micMeter: element("mic-meter", HTMLElement),
  micState: element("mic-state", HTMLElement),
  voiceMeter: element("voice-meter", HTMLElement),
  voiceState: element("voice-state", HTMLElement),
  remoteAudio: element("remote-audio", HTMLAudioElement),
  settingsGroup: element("settings", HTMLDetailsElement),
  vadSettings: element("vad-settings", HTMLFieldSetElement),
  vadThreshold: element("vad-threshold", HTMLInputElement),
  vadThresholdValue: element("vad-threshold-value", HTMLOutputElement),
  turnEnd: element("turn-end", HTMLSelectElement),
  vadSilenceField: element("vad-silence-field", HTMLElement),
  vadSilence: element("vad-silence", HTMLInputElement),
  vadSilenceValue: element("vad-silence-value", HTMLOutputElement),
  chatSettings: element("chat-settings", HTMLFieldSetElement),
  streaming: element("streaming", HTMLInputElement),
  spoken: element("spoken", HTMLInputElement),
  idleHint: element("idle-hint", HTMLElement),
  voicePanel: element("voice-panel", HTMLElement),
  voiceHint: element("voice-hint", HTMLElement),
  omniPreview: element("omni-preview", HTMLVideoElement),
  composer: element("composer", HTMLFormElement),
  textInput: element("text-input", HTMLTextAreaElement),
  send: element("send", HTMLButtonElement),
  talk: element("talk", HTMLButtonElement),
  talkLabel: element("talk-label", HTMLElement),
  fileInput: element("file-input", HTMLInputElement),
  attach: element("attach", HTMLButtonElement),
  cameraButton: element("camera-button", HTMLButtonElement),
  camera: element("camera", HTMLElement),
  cameraVideo: element("camera-video", HTMLVideoElement),
  snap: element("snap", HTMLButtonElement),
  cameraCancel: element("camera-cancel", HTMLButtonElement),
  attachment: element("attachment", HTMLElement),
  attachmentThumb: element("attachment-thumb", HTMLImageElement),
  attachmentLabel: element("attachment-label", HTMLElement),
  attachmentRemove: element("attachment-remove", HTMLButtonElement),
};

// What the e2e test reads. Kept up to date as the call goes.
export const stats = {
  state: "idle",
  events: {},
  remoteAudioPeak: 0,
  remoteAudioLoudMs: 0,
  endOfTurn: null, // the last response's `parley.end_of_turn`: how the server judged the turn over
  truncations: [], // replies cut where the person spoke over them: {item_id, audio_end_ms, transcript}
  queue: [], // places in line while every model replica was busy: {position, eta_seconds}
  // performance.now() of: meter ticks with the assistant audible, speech_started and
  // output_audio_buffer.started events (how fast the assistant went quiet when spoken over).
  remoteLoudTimes: [],
  speechStartedTimes: [],
  outputStartedTimes: [],
  playoutDelays: [], // [performance.now(), ms]: the browser's jitter-buffer delay, twice a second
};
/** @type {any} */ (window).parleyStats = stats;

// Modes in which the server hears the microphone all the time and ends turns itself.
export function isVoiceMode(mode) {
  return mode === "half_duplex" || mode === "full_duplex" || mode === "omni";
}

// ---------------------------------------------------------------------------------------------
// Settings (remembered in this browser).

export const settings = loadSettings();

function loadSettings() {
  const defaults = { mode: null, streaming: true, spoken: true, vadThreshold: 0.5, vadSilenceMs: 500, turnEnd: "server_vad" };
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}") };
  } catch {
    return defaults; // storage disabled or corrupt: defaults are fine
  }
}

export function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // Private browsing may refuse storage; settings then last for this page only.
  }
}

// ---------------------------------------------------------------------------------------------
// The current call (see newCall in call.js for its fields), or null between calls.

export let call = null;

export function setCall(value) {
  call = value;
}

// A timer that belongs to a call: endCall clears whatever is still pending.
export function later(current, ms, fn) {
  const id = setTimeout(() => {
    current.timers.delete(id);
    fn();
  }, ms);
  current.timers.add(id);
  return id;
}

// ---------------------------------------------------------------------------------------------
// The image attached to the next message: { dataUrl, label }, or null.

export let attachment = null; // { dataUrl, label }

export function storeAttachment(value) {
  attachment = value;
}
