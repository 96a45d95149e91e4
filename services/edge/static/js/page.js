// Page state: the status line, which controls are enabled, the activity label and the error
// banner.

import { attachment, call, isVoiceMode, settings, stats, ui } from "./state.js";

// ---------------------------------------------------------------------------------------------
// Page state: status line, controls, activity.

export function setState(state, text) {
  stats.state = state;
  ui.status.textContent = text;
  ui.statusPill.dataset.state = state;
  document.body.dataset.callState = state;
  refreshControls();
}

export function isConnected() {
  return stats.state === "connected" && call?.dc?.readyState === "open";
}

export function refreshControls() {
  const busy = stats.state === "connecting" || stats.state === "connected";
  ui.start.disabled = busy;
  ui.stop.disabled = !busy;
  const connected = isConnected();
  ui.send.disabled = !connected || (!ui.textInput.value.trim() && !attachment);
  ui.talk.disabled = !connected || !call?.micTrack;
  ui.cancelReply.hidden = !(connected && (call?.activeResponseId || call?.assistantSpeaking));
  refreshMicState();
}

export function refreshMicState() {
  let text = "off";
  if (call?.micRefused) text = "blocked";
  else if (call?.micTrack) text = call.micTrack.enabled ? (settings.mode === "chat" ? "sending" : "live") : "muted";
  ui.micState.textContent = text;
}

export function connectedStatus() {
  return settings.mode === "chat" ? "Connected: chat" : "Connected: voice";
}

const ACTIVITY_TEXT = {
  idle: "",
  ready: "Your turn",
  listening: "Listening",
  hearing: "Hearing you",
  thinking: "Thinking",
  speaking: "Speaking",
};

export function setActivity(activity) {
  ui.activity.dataset.activity = activity;
  ui.activity.textContent = ACTIVITY_TEXT[activity] ?? "";
}

// The activity when nothing is happening: waiting for the person.
export function restingActivity() {
  if (!isConnected()) return "idle";
  return isVoiceMode(settings.mode) ? "listening" : "ready";
}

// ---------------------------------------------------------------------------------------------
// Errors.

export function showError(message) {
  ui.error.textContent = message;
  ui.errorBanner.hidden = !message;
}

export function clearError() {
  showError("");
}

export function mediaErrorMessage(err, device) {
  const name = err?.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return `Access to the ${device} was refused. Allow the ${device} for this page (the icon at the left of the address bar), then try again.`;
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return `No ${device} was found. Connect one, then try again.`;
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return `The ${device} could not be started: another application may be using it.`;
  }
  return `The ${device} could not be opened (${err?.message || name || "unknown error"}).`;
}

export function insecureContextMessage(device) {
  return `This browser offers the ${device} only to secure pages: open Parley over https:// or on localhost.`;
}
