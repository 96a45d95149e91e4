// Parley call page.
//
// One WebRTC call to the edge: the microphone goes up as an Opus track, the assistant's voice
// comes back as the remote track, and OpenAI Realtime (GA) events travel as JSON text on the
// data channel "oai-events" that this page creates. See REALTIME_PROTOCOL.md for the events.
//
// The e2e driver (tests/e2e/drive_call.mjs) reads `window.parleyStats` and the element ids used
// here; keep them stable.

const KNOWN_MODES = ["chat", "half_duplex", "full_duplex", "omni"];
const MODE_HINTS = {
  chat: "Type a message, attach an image, or hold the talk button. Parley answers in text and voice.",
  half_duplex: "Hands-free: speak, pause, and Parley answers out loud.",
  full_duplex: "Talk over Parley to interrupt it. Not available on this server yet.",
  omni: "Voice plus the camera. Not available on this server yet.",
};
const FALLBACK_CONFIG = { ice_servers: [], modes: ["chat", "half_duplex"], default_mode: "half_duplex", idle_timeout_seconds: null };

const MAX_IMAGE_SIDE = 1024; // px on the long side; larger photos only cost upload time
const JPEG_QUALITY = 0.85;
const ICE_GATHER_TIMEOUT_MS = 2000; // the edge takes no trickle ICE: send what was gathered by then
const CONNECT_TIMEOUT_MS = 15000; // answer received but no data channel by then: ICE failed
const RECONNECT_GRACE_MS = 5000; // "disconnected" often recovers by itself; give it this long
const MIN_TALK_MS = 250; // shorter presses are taps, not speech (the server wants >= 100 ms)
const TALK_TAIL_MS = 300; // keep the mic open after release: the last words are still in flight
const METER_INTERVAL_MS = 50;
const LOUD_LEVEL = 0.02; // remote level counted as "sound" in parleyStats.remoteAudioLoudMs
const SETTINGS_KEY = "parley.settings";

const $ = (id) => document.getElementById(id);
const ui = {
  mode: $("mode"),
  modeHint: $("mode-hint"),
  start: $("start"),
  stop: $("stop"),
  status: $("status"),
  statusPill: document.querySelector(".status-pill"),
  error: $("error"),
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
  vadSilence: $("vad-silence"),
  vadSilenceValue: $("vad-silence-value"),
  chatSettings: $("chat-settings"),
  streaming: $("streaming"),
  spoken: $("spoken"),
  idleHint: $("idle-hint"),
  voicePanel: $("voice-panel"),
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
const stats = {
  state: "idle",
  events: {},
  remoteAudioPeak: 0,
  remoteAudioLoudMs: 0,
};
window.parleyStats = stats;

class CallError extends Error {
  // A failure the person can act on; `message` is shown as is.
}

// ---------------------------------------------------------------------------------------------
// Settings (remembered in this browser).

const settings = loadSettings();

function loadSettings() {
  const defaults = { mode: null, streaming: true, spoken: true, vadThreshold: 0.5, vadSilenceMs: 500 };
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}") };
  } catch {
    return defaults; // storage disabled or corrupt: defaults are fine
  }
}

function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // Private browsing may refuse storage; settings then last for this page only.
  }
}

// ---------------------------------------------------------------------------------------------
// Server config.

let serverConfig = null;

async function loadConfig() {
  try {
    const response = await fetch("/v1/parley/config", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    serverConfig = { ...FALLBACK_CONFIG, ...(await response.json()) };
  } catch (err) {
    console.warn("Parley: could not load /v1/parley/config", err);
    if (!serverConfig) return null;
  }
  return serverConfig;
}

function applyConfig(config) {
  const available = new Set(config.modes);
  for (const option of ui.mode.options) {
    const ready = available.has(option.value);
    option.disabled = !ready;
    option.textContent = ready ? option.dataset.label : `${option.dataset.label} (coming soon)`;
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

function formatDuration(seconds) {
  if (seconds >= 120 && seconds % 60 === 0) return `${seconds / 60} minutes`;
  if (seconds >= 60) return `${Math.round(seconds / 6) / 10} minutes`;
  return `${Math.round(seconds)} seconds`;
}

// ---------------------------------------------------------------------------------------------
// Page state: status line, controls, activity.

function setState(state, text) {
  stats.state = state;
  ui.status.textContent = text;
  ui.statusPill.dataset.state = state;
  document.body.dataset.callState = state;
  refreshControls();
}

function isConnected() {
  return stats.state === "connected" && call?.dc?.readyState === "open";
}

function refreshControls() {
  const busy = stats.state === "connecting" || stats.state === "connected";
  ui.start.disabled = busy;
  ui.stop.disabled = !busy;
  const connected = isConnected();
  ui.send.disabled = !connected || (!ui.textInput.value.trim() && !attachment);
  ui.talk.disabled = !connected || !call?.micTrack;
  ui.cancelReply.hidden = !(connected && (call?.activeResponseId || call?.assistantSpeaking));
  refreshMicState();
}

function refreshMicState() {
  let text = "off";
  if (call?.micRefused) text = "blocked";
  else if (call?.micTrack) text = call.micTrack.enabled ? (settings.mode === "chat" ? "sending" : "live") : "muted";
  ui.micState.textContent = text;
}

const ACTIVITY_TEXT = {
  idle: "",
  ready: "Your turn",
  listening: "Listening",
  hearing: "Hearing you",
  thinking: "Thinking",
  speaking: "Speaking",
};

function setActivity(activity) {
  ui.activity.dataset.activity = activity;
  ui.activity.textContent = ACTIVITY_TEXT[activity] ?? "";
}

// The activity when nothing is happening: waiting for the person.
function restingActivity() {
  if (!isConnected()) return "idle";
  return settings.mode === "half_duplex" ? "listening" : "ready";
}

function renderMode() {
  const mode = settings.mode;
  const chat = mode === "chat";
  ui.modeHint.textContent = MODE_HINTS[mode] ?? "";
  ui.composer.hidden = !chat;
  ui.chatSettings.hidden = !chat;
  ui.voicePanel.hidden = chat;
  ui.vadSettings.hidden = mode !== "half_duplex";
  document.body.dataset.mode = mode;
  if (!chat) closeCamera();
}

// ---------------------------------------------------------------------------------------------
// Errors.

function showError(message) {
  ui.error.textContent = message;
  ui.errorBanner.hidden = !message;
}

function clearError() {
  showError("");
}

function mediaErrorMessage(err, device) {
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

function insecureContextMessage(device) {
  return `This browser offers the ${device} only to secure pages: open Parley over https:// or on localhost.`;
}

// ---------------------------------------------------------------------------------------------
// Audio: one AudioContext for the page, analysers for the mic and the assistant's voice.

let audioContext = null;

function ensureAudioContext() {
  // Created inside the Start click so that autoplay rules let it run.
  if (!audioContext) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    audioContext = new Context();
  }
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

function makeAnalyser(stream) {
  const context = ensureAudioContext();
  if (!context) return null;
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser); // not to the destination: playback is the <audio> element's job
  return { source, analyser, buffer: new Float32Array(analyser.fftSize) };
}

function releaseAnalyser(meter) {
  if (!meter) return;
  try {
    meter.source.disconnect();
  } catch {
    // already disconnected
  }
}

function peakLevel(meter) {
  meter.analyser.getFloatTimeDomainData(meter.buffer);
  let peak = 0;
  for (const sample of meter.buffer) {
    const level = Math.abs(sample);
    if (level > peak) peak = level;
  }
  return Math.min(1, peak);
}

let meterTimer = null;
let lastMeterTick = 0;

function startMeters() {
  if (meterTimer) return;
  lastMeterTick = performance.now();
  // setInterval rather than requestAnimationFrame: the stats must keep counting when the tab
  // is hidden or rendering is throttled.
  meterTimer = setInterval(updateMeters, METER_INTERVAL_MS);
}

function stopMeters() {
  clearInterval(meterTimer);
  meterTimer = null;
  drawMeter(ui.micMeter, 0);
  drawMeter(ui.voiceMeter, 0);
  ui.voiceState.textContent = "silent";
}

function updateMeters() {
  const now = performance.now();
  const elapsed = now - lastMeterTick;
  lastMeterTick = now;
  if (call?.micMeter) drawMeter(ui.micMeter, peakLevel(call.micMeter));
  if (call?.remoteMeter) {
    const level = peakLevel(call.remoteMeter);
    if (level > stats.remoteAudioPeak) stats.remoteAudioPeak = level;
    if (level > LOUD_LEVEL) stats.remoteAudioLoudMs += elapsed;
    drawMeter(ui.voiceMeter, level);
    ui.voiceState.textContent = level > LOUD_LEVEL ? "speaking" : "silent";
  }
}

function drawMeter(fill, level) {
  // A square root spreads quiet speech over more of the bar, like a VU meter.
  const percent = Math.round(Math.sqrt(level) * 100);
  fill.style.transform = `scaleX(${percent / 100})`;
  const meter = fill.parentElement;
  const rounded = String(Math.round(percent / 10) * 10);
  if (meter.getAttribute("aria-valuenow") !== rounded) meter.setAttribute("aria-valuenow", rounded);
}

// ---------------------------------------------------------------------------------------------
// The call.

let call = null;

function newCall() {
  return {
    pc: null,
    dc: null,
    micStream: null,
    micTrack: null,
    micRefused: false,
    micMeter: null,
    remoteMeter: null,
    url: null, // the call's URL (Location header), for hang-up
    abort: new AbortController(),
    timers: new Set(),
    closedByServer: false,
    serverEndReason: "",
    activeResponseId: null,
    responseRequested: false, // response.create sent, response.created not yet seen
    pendingCreate: false, // a response.create waiting for the current response to end
    talking: null,
    talkTail: null,
    assistantSpeaking: false,
    lastSession: null,
    sessionUpdates: new Set(), // event ids of our session.update events not yet answered
    requestIds: new Set(), // event ids of our response.create events
  };
}

function later(current, ms, fn) {
  const id = setTimeout(() => {
    current.timers.delete(id);
    fn();
  }, ms);
  current.timers.add(id);
  return id;
}

async function startCall() {
  if (call) return;
  const current = newCall();
  call = current;
  clearError();
  resetConversation();
  resetStats();
  setState("connecting", "Connecting…");
  ensureAudioContext();
  try {
    const config = await loadConfig();
    if (call !== current) return;
    if (config) applyConfig(config); // the page may have loaded while the server was down
    await openMicrophone(current);
    if (call !== current) return;
    await connect(current, config ?? FALLBACK_CONFIG);
  } catch (err) {
    if (call !== current) return; // ended by the person while connecting
    if (!(err instanceof CallError)) console.warn("Parley: call setup failed", err);
    const message =
      err instanceof CallError ? err.message : `The call could not be set up (${err?.message || err}).`;
    endCall("failed", message);
  }
}

async function openMicrophone(current) {
  if (!navigator.mediaDevices?.getUserMedia) {
    return micUnavailable(current, insecureContextMessage("microphone"));
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (err) {
    return micUnavailable(current, mediaErrorMessage(err, "microphone"));
  }
  if (call !== current) {
    stream.getTracks().forEach((track) => track.stop());
    return;
  }
  current.micStream = stream;
  current.micTrack = stream.getAudioTracks()[0];
  // In chat mode the mic is sent only while the talk button is held.
  current.micTrack.enabled = settings.mode !== "chat";
  current.micMeter = makeAnalyser(stream);
  current.micTrack.addEventListener("ended", () => {
    if (call === current) showError("The microphone stopped (it was unplugged or switched off).");
  });
  startMeters();
}

function micUnavailable(current, message) {
  // Chat mode still works by typing; voice mode cannot work at all.
  if (settings.mode === "chat") {
    current.micRefused = true;
    showError(`${message} You can still type messages.`);
    return;
  }
  throw new CallError(message);
}

async function connect(current, config) {
  const pc = new RTCPeerConnection({ iceServers: config.ice_servers ?? [] });
  current.pc = pc;
  if (current.micTrack) pc.addTrack(current.micTrack, current.micStream);
  else pc.addTransceiver("audio", { direction: "recvonly" }); // the edge needs an audio section

  // The channel must exist before the offer so that the offer carries it.
  const dc = pc.createDataChannel("oai-events");
  current.dc = dc;
  dc.addEventListener("open", () => onChannelOpen(current));
  dc.addEventListener("message", (event) => onChannelMessage(current, event));
  dc.addEventListener("close", () => onChannelClosed(current));
  pc.addEventListener("track", (event) => onRemoteTrack(current, event));
  pc.addEventListener("connectionstatechange", () => onConnectionState(current));

  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringDone(pc, ICE_GATHER_TIMEOUT_MS);
  if (call !== current) return;
  const answer = await postOffer(current, pc.localDescription.sdp);
  if (call !== current) return;
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  later(current, CONNECT_TIMEOUT_MS, () => {
    if (call === current && stats.state === "connecting") {
      endCall(
        "failed",
        "The server answered but no media connection could be made. If Parley runs on another machine, its network (or a TURN server) may need configuring.",
      );
    }
  });
}

function iceGatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function postOffer(current, sdp) {
  let response;
  try {
    response = await fetch("/v1/realtime/calls", {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: sdp,
      signal: current.abort.signal,
    });
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new CallError("The Parley server cannot be reached. Check that it is running, then try again.");
  }
  if (response.ok) {
    current.url = response.headers.get("Location");
    return response.text();
  }
  let detail = null;
  try {
    detail = (await response.json())?.error ?? null;
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  if (response.status === 503 && detail?.code === "server_full") {
    const retry = Number(response.headers.get("Retry-After"));
    const when = retry > 0 ? `in about ${formatDuration(retry)}` : "in a minute";
    throw new CallError(`The server is full: every call slot is in use. Please try again ${when}.`);
  }
  if (response.status >= 500) {
    throw new CallError(`The Parley server is unavailable (HTTP ${response.status}${detail?.message ? `: ${detail.message}` : ""}). Try again shortly.`);
  }
  throw new CallError(`The server refused the call: ${detail?.message || response.statusText} (HTTP ${response.status}).`);
}

function onRemoteTrack(current, event) {
  if (event.track.kind !== "audio" || call !== current) return;
  const stream = event.streams[0] ?? new MediaStream([event.track]);
  // Chromium feeds a remote WebRTC stream to WebAudio only while a media element plays it, so
  // the <audio> element and the analyser share the same stream.
  ui.remoteAudio.srcObject = stream;
  playRemoteAudio();
  releaseAnalyser(current.remoteMeter);
  current.remoteMeter = makeAnalyser(stream);
  startMeters();
}

function playRemoteAudio() {
  ui.remoteAudio.play().catch((err) => {
    if (err?.name !== "NotAllowedError") return; // AbortError: a newer stream replaced this one
    showError("The browser blocked the assistant's voice. Click anywhere on the page to hear it.");
    document.addEventListener(
      "click",
      () => {
        ensureAudioContext();
        ui.remoteAudio.play().then(clearError, () => {});
      },
      { once: true },
    );
  });
}

function onChannelOpen(current) {
  if (call !== current) return;
  setState("connected", connectedStatus());
  sendSessionUpdate();
  applyMicForMode();
  setActivity(restingActivity());
  if (settings.mode === "chat" && !ui.composer.hidden) ui.textInput.focus();
}

function connectedStatus() {
  return settings.mode === "chat" ? "Connected: chat" : "Connected: voice";
}

function onConnectionState(current) {
  if (call !== current) return;
  const state = current.pc.connectionState;
  if (state === "failed") {
    endCall("failed", "The connection to the server was lost.");
  } else if (state === "disconnected") {
    if (stats.state === "connected") ui.status.textContent = "Connection interrupted, waiting for it to recover…";
    later(current, RECONNECT_GRACE_MS, () => {
      if (call === current && current.pc.connectionState === "disconnected") {
        endCall("failed", "The connection to the server was interrupted and did not recover.");
      }
    });
  } else if (state === "connected" && stats.state === "connected") {
    ui.status.textContent = connectedStatus();
  }
}

function onChannelClosed(current) {
  if (call !== current) return;
  current.closedByServer = true;
  const reason = current.serverEndReason || "The call was ended by the server.";
  if (stats.state === "connecting") endCall("failed", "The server closed the call while it was being set up.");
  else endCall("ended", reason);
}

function stopCall() {
  if (!call) return;
  endCall("ended", "");
}

// Tear the call down. `message` (if any) goes to the error line.
function endCall(state, message) {
  const current = call;
  if (!current) return;
  call = null;
  current.abort.abort();
  current.timers.forEach(clearTimeout);
  if (current.url && !current.closedByServer) hangUp(current.url);
  if (current.dc) current.dc.close();
  if (current.pc) current.pc.close();
  current.micStream?.getTracks().forEach((track) => track.stop());
  releaseAnalyser(current.micMeter);
  releaseAnalyser(current.remoteMeter);
  ui.remoteAudio.srcObject = null;
  stopMeters();
  finishOpenEntries();
  setTalkUi(false);
  setActivity("idle");
  if (message) showError(message);
  setState(state, state === "failed" ? "Call failed" : "Call ended");
}

function hangUp(url) {
  // Tell the server at once rather than letting it notice the dead peer connection.
  fetch(`${url}/hangup`, { method: "POST", keepalive: true }).catch(() => {});
}

function resetStats() {
  stats.events = {};
  stats.remoteAudioPeak = 0;
  stats.remoteAudioLoudMs = 0;
}

// ---------------------------------------------------------------------------------------------
// Events to the server.

function newId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function send(event) {
  if (!isConnected()) return false;
  const withId = { event_id: newId("evt"), ...event };
  call.dc.send(JSON.stringify(withId));
  return withId.event_id;
}

function sessionConfig() {
  const mode = settings.mode;
  const voice = mode !== "chat" || settings.spoken;
  const turnDetection =
    mode === "half_duplex"
      ? {
          type: "server_vad",
          threshold: settings.vadThreshold,
          silence_duration_ms: settings.vadSilenceMs,
          prefix_padding_ms: 300,
        }
      : null; // chat: the page commits turns itself (send, or release of the talk button)
  return {
    type: "realtime",
    output_modalities: [voice ? "audio" : "text"],
    audio: { input: { turn_detection: turnDetection } },
    parley: { mode },
  };
}

function sendSessionUpdate() {
  const id = send({ type: "session.update", session: sessionConfig() });
  if (id) call.sessionUpdates.add(id);
}

// Ask for a reply to what was just added. One response at a time: a new request while the
// assistant is still answering stops that answer first (the person has moved on).
function requestResponse() {
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
function cancelReply() {
  if (!call) return;
  if (call.activeResponseId) {
    call.pendingCreate = false;
    send({ type: "response.cancel", response_id: call.activeResponseId });
  } else if (call.assistantSpeaking) {
    send({ type: "output_audio_buffer.clear" });
  }
}

// ---------------------------------------------------------------------------------------------
// Events from the server.

const HANDLERS = {
  "session.created": (e) => (call.lastSession = e.session),
  "session.updated": onSessionUpdated,
  "input_audio_buffer.speech_started": (e) => {
    userEntry(e.item_id);
    setActivity("hearing");
  },
  "input_audio_buffer.speech_stopped": () => setActivity("thinking"),
  "input_audio_buffer.committed": (e) => {
    const entry = userEntry(e.item_id);
    if (entry) entry.committed = true; // the server will transcribe it, whatever happens next
    setActivity("thinking");
  },
  "conversation.item.added": (e) => onItemAdded(e.item),
  "conversation.item.input_audio_transcription.delta": (e) => onUserTranscript(e.item_id, e.delta, false),
  "conversation.item.input_audio_transcription.completed": (e) => onUserTranscript(e.item_id, e.transcript, true),
  "response.created": onResponseCreated,
  "response.output_item.added": (e) => assistantEntry(e.item?.id),
  "response.output_audio_transcript.delta": (e) => onAssistantDelta(e.item_id, e.delta),
  "response.output_text.delta": (e) => onAssistantDelta(e.item_id, e.delta),
  "response.output_audio_transcript.done": (e) => onAssistantTextDone(e.item_id, e.transcript),
  "response.output_text.done": (e) => onAssistantTextDone(e.item_id, e.text),
  "response.done": (e) => onResponseDone(e.response),
  "output_audio_buffer.started": () => {
    call.assistantSpeaking = true;
    setActivity("speaking");
  },
  "output_audio_buffer.stopped": onAssistantSilent,
  "output_audio_buffer.cleared": onAssistantSilent,
  error: (e) => onServerError(e.error ?? {}),
};

function onChannelMessage(current, message) {
  if (call !== current || typeof message.data !== "string") return;
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    console.warn("Parley: a server event that is not JSON was ignored");
    return;
  }
  const type = String(event?.type);
  stats.events[type] = (stats.events[type] ?? 0) + 1;
  HANDLERS[type]?.(event);
  refreshControls();
}

function onSessionUpdated(event) {
  call.lastSession = event.session;
  call.sessionUpdates.clear();
}

function onAssistantSilent() {
  call.assistantSpeaking = false;
  if (!call.activeResponseId) setActivity(restingActivity());
}

function onServerError(error) {
  const message = error.message || "The server reported an error.";
  showError(message);
  if (error.code === "session_idle_timeout" || error.code === "session_expired") {
    call.serverEndReason = message; // the channel closes next; say why
  }
  if (error.event_id && call.sessionUpdates.delete(error.event_id)) revertSessionUi();
  if (error.event_id && call.requestIds.delete(error.event_id)) {
    call.responseRequested = false; // that response.create was refused: nothing is coming
    setActivity(restingActivity());
  }
}

// The server refused a session.update: show the settings it actually has.
function revertSessionUi() {
  const mode = call.lastSession?.parley?.mode;
  if (mode && mode !== settings.mode) {
    settings.mode = mode;
    ui.mode.value = mode;
    renderMode();
    applyMicForMode();
  }
}

// ---------------------------------------------------------------------------------------------
// Transcript.

const entries = new Map(); // item id -> entry

function resetConversation() {
  entries.clear();
  followingTranscript = true;
  ui.transcript.replaceChildren();
  ui.emptyState.hidden = false;
}

function createEntry(id, role) {
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

function watchTranscriptScroll() {
  ui.transcript.addEventListener("scroll", () => (followingTranscript = isScrolledToBottom()), { passive: true });
  // The box shrinks when the composer grows (an attachment, the camera): keep the end in view.
  new ResizeObserver(followTranscript).observe(ui.transcript);
}

function userEntry(id) {
  if (!id) return null;
  return entries.get(id) ?? renderEntry(createEntry(id, "user"));
}

function assistantEntry(id) {
  if (!id) return null;
  return entries.get(id) ?? renderEntry(createEntry(id, "assistant"));
}

// Draw an entry from its state. Assistant text is held back until the reply is complete when
// streaming is off.
function renderEntry(entry) {
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

function addImage(entry, dataUrl) {
  const img = document.createElement("img");
  img.className = "sent-image";
  img.src = dataUrl;
  img.alt = "Image you sent";
  img.addEventListener("load", followTranscript, { once: true });
  entry.bubble.prepend(img);
}

function onItemAdded(item) {
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

function onUserTranscript(itemId, text, final) {
  const entry = userEntry(itemId);
  if (!entry) return;
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
  if (settings.mode === "half_duplex") {
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
function settlePendingUserEntries() {
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

function onAssistantDelta(itemId, delta) {
  const entry = assistantEntry(itemId);
  if (!entry || !delta) return;
  entry.text += delta;
  renderEntry(entry);
}

function onAssistantTextDone(itemId, text) {
  const entry = assistantEntry(itemId);
  if (!entry) return;
  if (typeof text === "string") entry.text = text;
  entry.done = true;
  renderEntry(entry);
}

function onResponseCreated(event) {
  call.activeResponseId = event.response?.id ?? null;
  call.responseRequested = false;
  if (!call.assistantSpeaking) setActivity("thinking");
  if (call.pendingCreate && call.activeResponseId) {
    // The person sent something new while this response was on its way: stop it.
    send({ type: "response.cancel", response_id: call.activeResponseId });
  }
}

function onResponseDone(response) {
  const item = response?.output?.[0];
  const entry = item?.id ? assistantEntry(item.id) : null;
  if (entry) {
    const part = item.content?.[0];
    const finalText = part?.transcript ?? part?.text;
    if (typeof finalText === "string" && finalText) entry.text = finalText;
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
  if (status === "cancelled") setNote(entry, "Stopped", "muted");
  else if (status === "failed") setNote(entry, "This reply failed", "error");
  else if (status === "incomplete") setNote(entry, "Cut short at the length limit", "muted");
  else if (!entry.text.trim()) setNote(entry, "No reply text", "muted");
}

// When a call ends mid-reply, stop showing typing dots.
function finishOpenEntries() {
  for (const entry of entries.values()) {
    if (entry.done) continue;
    entry.done = true;
    if (!entry.text && !entry.noteEl.textContent) setNote(entry, "Interrupted", "muted");
    renderEntry(entry);
  }
}

// ---------------------------------------------------------------------------------------------
// Chat: typed messages, images, push-to-talk.

let attachment = null; // { dataUrl, label }

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

function applyMicForMode() {
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

function stopTalking() {
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

function setTalkUi(active) {
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

// Images: downscaled to JPEG before they are attached.

function setAttachment(dataUrl, label) {
  attachment = { dataUrl, label };
  ui.attachmentThumb.src = dataUrl;
  ui.attachmentLabel.textContent = label;
  ui.attachment.hidden = false;
  refreshControls();
}

function clearAttachment() {
  attachment = null;
  ui.attachment.hidden = true;
  ui.attachmentThumb.removeAttribute("src");
  refreshControls();
}

function toJpegDataUrl(source, width, height) {
  const scale = Math.min(1, MAX_IMAGE_SIDE / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff"; // transparent PNG areas become white, not black, in JPEG
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", JPEG_QUALITY);
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

let cameraStream = null;

async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    showError(insecureContextMessage("camera"));
    return;
  }
  try {
    cameraStream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" },
      audio: false,
    });
  } catch (err) {
    showError(mediaErrorMessage(err, "camera"));
    return;
  }
  ui.cameraVideo.srcObject = cameraStream;
  ui.camera.hidden = false;
  ui.cameraButton.setAttribute("aria-expanded", "true");
  try {
    await ui.cameraVideo.play();
  } catch {
    // muted inline video may still be loading; the snapshot waits for a frame below
  }
  ui.snap.focus();
}

function closeCamera() {
  if (cameraStream) cameraStream.getTracks().forEach((track) => track.stop());
  cameraStream = null;
  ui.cameraVideo.srcObject = null;
  ui.camera.hidden = true;
  ui.cameraButton.setAttribute("aria-expanded", "false");
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

// ---------------------------------------------------------------------------------------------
// Settings controls.

function onModeChange() {
  const mode = ui.mode.value;
  if (call && mode === "half_duplex" && !call.micTrack) {
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
}

function onVadChange() {
  showVadValues();
  settings.vadThreshold = Number(ui.vadThreshold.value);
  settings.vadSilenceMs = Number(ui.vadSilence.value);
  saveSettings();
  if (isConnected() && settings.mode === "half_duplex") sendSessionUpdate();
}

function restoreControls() {
  ui.streaming.checked = settings.streaming;
  ui.spoken.checked = settings.spoken;
  ui.vadThreshold.value = String(settings.vadThreshold);
  ui.vadSilence.value = String(settings.vadSilenceMs);
  showVadValues();
}

// ---------------------------------------------------------------------------------------------
// Wiring.

function bind() {
  ui.start.addEventListener("click", startCall);
  ui.stop.addEventListener("click", stopCall);
  ui.mode.addEventListener("change", onModeChange);
  ui.errorDismiss.addEventListener("click", clearError);
  ui.cancelReply.addEventListener("click", cancelReply);

  ui.vadThreshold.addEventListener("input", showVadValues);
  ui.vadSilence.addEventListener("input", showVadValues);
  ui.vadThreshold.addEventListener("change", onVadChange);
  ui.vadSilence.addEventListener("change", onVadChange);

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
  // Until the config arrives, show what every edge offers.
  applyConfig({ ...FALLBACK_CONFIG, default_mode: settings.mode ?? FALLBACK_CONFIG.default_mode });
  setState("idle", "Not connected");
  setActivity("idle");
  const config = await loadConfig();
  if (config) applyConfig(config);
  else if (!call) showError("The Parley server cannot be reached. Check that it is running, then reload the page.");
}

init();
