// Parley call page.
//
// One WebRTC call to the edge: the microphone goes up as an Opus track, the assistant's voice
// comes back as the remote track, and OpenAI Realtime (GA) events travel as JSON text on the
// data channel "oai-events" that this page creates. The events: README, "The public protocol".
//
// The e2e driver (tests/e2e/drive_call.mjs) reads `window.parleyStats` and the element ids used
// here; keep them stable.
//
// This file wires the modules in js/ together (plain ES modules, no build step):
//   auth.js        the API token a protected server asks for (#token=… or the token field)
//   state.js       the page's elements, parleyStats, stored settings, the current call
//   page.js        status line, enabled controls, activity label, error banner
//   media.js       audio meters, the camera preview, images downscaled to JPEG
//   channel.js     events to the server on the data channel
//   transcript.js  the conversation as it is heard, typed and answered
//   chat.js        typed messages, attached images, push-to-talk
//   settings.js    the server's config, the mode, the settings panel
//   call.js        the WebRTC call and the events from the server
// Each module imports only modules listed above it, so there are no import cycles; values that
// several modules change (the call, the attached image) live in state.js.

import { captureTokenFromAddress, hasToken } from "./js/auth.js";
import { startCall, stopCall } from "./js/call.js";
import { cancelReply } from "./js/channel.js";
import { bindChat } from "./js/chat.js";
import { clearError, setActivity, setState, showError } from "./js/page.js";
import {
  FALLBACK_CONFIG,
  KNOWN_MODES,
  applyConfig,
  bindSettings,
  loadConfig,
  restoreControls,
  showTokenField,
} from "./js/settings.js";
import { call, settings, ui } from "./js/state.js";
import { watchTranscriptScroll } from "./js/transcript.js";

function bind() {
  ui.start.addEventListener("click", startCall);
  ui.stop.addEventListener("click", stopCall);
  ui.errorDismiss.addEventListener("click", clearError);
  ui.cancelReply.addEventListener("click", cancelReply);

  bindSettings();
  bindChat();
  watchTranscriptScroll();

  // Leaving the page ends the call on the server at once instead of at its idle timeout.
  window.addEventListener("pagehide", () => {
    if (call?.url && !call.closedByServer) navigator.sendBeacon?.(`${call.url}/hangup`);
  });
}

async function init() {
  bind();
  restoreControls();
  ui.cameraButton.setAttribute("aria-expanded", "false");
  // On a phone the settings would push the conversation out of sight; they start folded.
  if (window.matchMedia("(max-width: 760px)").matches) ui.settingsGroup.open = false;
  if (!KNOWN_MODES.includes(settings.mode)) settings.mode = null;
  captureTokenFromAddress();
  showTokenField(false);
  // Until the config arrives, show what every edge offers.
  applyConfig({ ...FALLBACK_CONFIG, default_mode: settings.mode ?? FALLBACK_CONFIG.default_mode });
  setState("idle", "Not connected");
  setActivity("idle");
  const config = await loadConfig();
  if (config) applyConfig(config);
  else if (!call && !ui.tokenField.hidden && !hasToken()) showError("This server needs an access token: enter it under Settings.");
  else if (!call) showError("The Parley server cannot be reached. Check that it is running, then reload the page.");
}

init();
