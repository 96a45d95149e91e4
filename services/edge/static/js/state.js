// State shared by the call page's modules: the page's elements, the stats the e2e test reads,
// the settings remembered in this browser, the current call and the attached image.
//
// The e2e driver (tests/e2e/drive_call.mjs) reads `window.parleyStats` and the element ids used
// here; keep them stable.
//
// `call` and `attachment` change as the page runs: other modules read them through the import
// (an ES module binding is live) and change them only through setCall / storeAttachment.

const SETTINGS_KEY = "parley.settings";

const $ = (id) => document.getElementById(id);
export const ui = {
  mode: $("mode"),
  modeHint: $("mode-hint"),
  tokenField: $("token-field"),
  token: $("token"),
  start: $("start"),
  stop: $("stop"),
  status: $("status"),
  statusPill: document.querySelector(".status-pill"),
  error: $("error"),
  queue: $("queue"),
  errorBanner: document.querySelector(".error-banner"),
  errorDismiss: $("error-dismiss"),
  activity: $("activity"),
  cancelReply: $("cancel-reply"),
  transcript: $("transcript"),
  emptyState: $("empty-state"),
  micMeter: $("mic-meter"),
  micState: $("mic-state"),
  voiceMeter: $("voice-meter"),
  voiceState: $("voice-state"),
  remoteAudio: $("remote-audio"),
  settingsGroup: $("settings"),
  vadSettings: $("vad-settings"),
  vadThreshold: $("vad-threshold"),
  vadThresholdValue: $("vad-threshold-value"),
  turnEnd: $("turn-end"),
  vadSilenceField: $("vad-silence-field"),
  vadSilence: $("vad-silence"),
  vadSilenceValue: $("vad-silence-value"),
  chatSettings: $("chat-settings"),
  streaming: $("streaming"),
  spoken: $("spoken"),
  idleHint: $("idle-hint"),
  voicePanel: $("voice-panel"),
  voiceHint: $("voice-hint"),
  omniPreview: $("omni-preview"),
  composer: $("composer"),
  textInput: $("text-input"),
  send: $("send"),
  talk: $("talk"),
  talkLabel: $("talk-label"),
  fileInput: $("file-input"),
  attach: $("attach"),
  cameraButton: $("camera-button"),
  camera: $("camera"),
  cameraVideo: $("camera-video"),
  snap: $("snap"),
  cameraCancel: $("camera-cancel"),
  attachment: $("attachment"),
  attachmentThumb: $("attachment-thumb"),
  attachmentLabel: $("attachment-label"),
  attachmentRemove: $("attachment-remove"),
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
};
window.parleyStats = stats;

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
