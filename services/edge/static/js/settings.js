// Settings: the server's config (which modes it offers), the mode the page shows, and the
// settings panel. The values themselves live in state.js (`settings`), since every module reads
// them.

import { sendSessionUpdate } from "./channel.js";
import { applyMicForMode, stopTalking } from "./chat.js";
import { closeCamera } from "./media.js";
import { apiFetch, hasToken, setToken } from "./auth.js";
import { clearError, connectedStatus, isConnected, restingActivity, setActivity, showError } from "./page.js";
import { call, isVoiceMode, saveSettings, settings, ui } from "./state.js";
import { entries, renderEntry, settlePendingUserEntries } from "./transcript.js";

export const KNOWN_MODES = ["chat", "half_duplex", "full_duplex", "omni"];
const MODE_HINTS = {
  chat: "Type a message, attach an image, or hold the talk button. Parley answers in text and voice.",
  half_duplex: "Hands-free: speak, pause, and Parley answers out loud.",
  full_duplex: "Hands-free, and you can interrupt: start talking and Parley stops to listen.",
  omni: "Voice and camera: Parley sees about one picture a second while you talk, and you can interrupt it.",
};
const VOICE_HINTS = {
  half_duplex: "Just speak: Parley answers when you pause, and stops listening while it talks.",
  full_duplex: "Just speak: Parley answers when you pause. Talk over it to interrupt.",
  omni: "Show things to the camera and ask about them. Talk over Parley to interrupt.",
};
export const FALLBACK_CONFIG = { ice_servers: [], modes: ["chat", "half_duplex"], default_mode: "half_duplex", idle_timeout_seconds: null };

// ---------------------------------------------------------------------------------------------
// Server config.

let serverConfig = null;

export async function loadConfig() {
  try {
    const response = await apiFetch("/v1/parley/config", { cache: "no-store" });
    if (response.status === 401) showTokenField(true);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    serverConfig = { ...FALLBACK_CONFIG, ...(await response.json()) };
  } catch (err) {
    console.warn("Parley: could not load /v1/parley/config", err);
    if (!serverConfig) return null;
  }
  return serverConfig;
}

// The token field shows once the server has asked for a token (or one was given), not before.
export function showTokenField(needed) {
  if (!needed && !hasToken()) return;
  ui.tokenField.hidden = false;
  ui.token.placeholder = hasToken() ? "set for this tab (type to replace it)" : "";
}

export function applyConfig(config) {
  const available = new Set(config.modes);
  for (const option of ui.mode.options) {
    const ready = available.has(option.value);
    option.disabled = !ready;
    option.textContent = ready ? option.dataset.label : `${option.dataset.label} (not on this server)`;
  }
  const wanted = available.has(settings.mode) ? settings.mode : config.default_mode;
  if (available.has(wanted)) ui.mode.value = wanted;
  settings.mode = ui.mode.value;
  const idle = config.idle_timeout_seconds;
  ui.idleHint.textContent = idle
    ? `A call ends by itself after ${formatDuration(idle)} without speech or messages.`
    : "";
  renderMode();
}

export function formatDuration(seconds) {
  if (seconds >= 120 && seconds % 60 === 0) return `${seconds / 60} minutes`;
  if (seconds >= 60) return `${Math.round(seconds / 6) / 10} minutes`;
  return `${Math.round(seconds)} seconds`;
}

// The parts of the page that depend on the mode.
export function renderMode() {
  const mode = settings.mode;
  const chat = mode === "chat";
  ui.modeHint.textContent = MODE_HINTS[mode] ?? "";
  ui.composer.hidden = !chat;
  ui.chatSettings.hidden = !chat;
  ui.voicePanel.hidden = chat;
  ui.vadSettings.hidden = !isVoiceMode(mode);
  ui.voiceHint.textContent = VOICE_HINTS[mode] ?? "";
  ui.omniPreview.hidden = mode !== "omni" || !call?.cameraTrack;
  document.body.dataset.mode = mode;
  if (!chat) closeCamera();
}

// ---------------------------------------------------------------------------------------------
// Settings controls.

function onModeChange() {
  const mode = ui.mode.value;
  if (call && isVoiceMode(mode) && !call.micTrack) {
    // Voice needs a microphone and this call has none; changing tracks mid-call is not supported.
    showError("Voice mode needs the microphone, which this call does not have. End the call, allow the microphone and start again.");
    ui.mode.value = settings.mode;
    return;
  }
  if (call?.talking) stopTalking();
  if (call) settlePendingUserEntries();
  settings.mode = mode;
  saveSettings();
  renderMode();
  if (isConnected()) {
    sendSessionUpdate();
    applyMicForMode();
    ui.status.textContent = connectedStatus();
    if (!call.activeResponseId && !call.assistantSpeaking) setActivity(restingActivity());
  }
}

function showVadValues() {
  ui.vadThresholdValue.textContent = Number(ui.vadThreshold.value).toFixed(2);
  ui.vadSilenceValue.textContent = `${ui.vadSilence.value} ms`;
  ui.vadSilenceField.hidden = ui.turnEnd.value === "semantic_vad"; // the turn model decides instead
}

function onVadChange() {
  showVadValues();
  settings.turnEnd = ui.turnEnd.value;
  settings.vadThreshold = Number(ui.vadThreshold.value);
  settings.vadSilenceMs = Number(ui.vadSilence.value);
  saveSettings();
  if (isConnected() && isVoiceMode(settings.mode)) sendSessionUpdate();
}

export function restoreControls() {
  ui.streaming.checked = settings.streaming;
  ui.spoken.checked = settings.spoken;
  ui.vadThreshold.value = String(settings.vadThreshold);
  ui.vadSilence.value = String(settings.vadSilenceMs);
  ui.turnEnd.value = settings.turnEnd === "semantic_vad" ? "semantic_vad" : "server_vad";
  showVadValues();
}

// The settings panel's controls.
export function bindSettings() {
  ui.mode.addEventListener("change", onModeChange);
  ui.token.addEventListener("change", async () => {
    setToken(ui.token.value.trim());
    const config = await loadConfig();
    if (config) {
      applyConfig(config);
      clearError();
    }
  });

  ui.vadThreshold.addEventListener("input", showVadValues);
  ui.vadSilence.addEventListener("input", showVadValues);
  ui.vadThreshold.addEventListener("change", onVadChange);
  ui.vadSilence.addEventListener("change", onVadChange);
  ui.turnEnd.addEventListener("change", onVadChange);

  ui.streaming.addEventListener("change", () => {
    settings.streaming = ui.streaming.checked;
    saveSettings();
    entries.forEach(renderEntry);
  });
  ui.spoken.addEventListener("change", () => {
    settings.spoken = ui.spoken.checked;
    saveSettings();
    if (isConnected()) sendSessionUpdate();
  });
}
