// The call: one WebRTC call to the edge. The microphone goes up as an Opus track, the
// assistant's voice comes back as the remote track, and OpenAI Realtime (GA) events travel as
// JSON text on the data channel "oai-events" that this page creates (sent by channel.js,
// handled here). The events: README, "The public protocol".

import { sendSessionUpdate } from "./channel.js";
import { applyMicForMode, setTalkUi } from "./chat.js";
import { ensureAudioContext, makeAnalyser, releaseAnalyser, startMeters, stopMeters } from "./media.js";
import {
  clearError,
  connectedStatus,
  insecureContextMessage,
  mediaErrorMessage,
  refreshControls,
  restingActivity,
  setActivity,
  setState,
  showError,
} from "./page.js";
import { apiFetch, hasToken } from "./auth.js";
import { FALLBACK_CONFIG, applyConfig, formatDuration, loadConfig, renderMode, showTokenField } from "./settings.js";
import { call, later, setCall, settings, stats, ui } from "./state.js";
import {
  assistantEntry,
  finishOpenEntries,
  onAssistantDelta,
  onAssistantTextDone,
  onItemAdded,
  onItemTruncated,
  onResponseCreated,
  onResponseDone,
  onUserPartial,
  onUserTranscript,
  resetConversation,
  settlePendingUserEntries,
  userEntry,
} from "./transcript.js";

const ICE_GATHER_TIMEOUT_MS = 2000; // the edge takes no trickle ICE: send what was gathered by then
const CONNECT_TIMEOUT_MS = 15000; // answer received but no data channel by then: ICE failed
const RECONNECT_GRACE_MS = 5000; // "disconnected" often recovers by itself; give it this long

class CallError extends Error {
  // A failure the person can act on; `message` is shown as is.
}

// ---------------------------------------------------------------------------------------------
// The call.

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

export async function startCall() {
  if (call) return;
  const current = newCall();
  setCall(current);
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
      err instanceof CallError
        ? err.message
        : `The call could not be set up (${err instanceof Error ? err.message : String(err)}).`;
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
  if (settings.mode === "omni") await openOmniCamera(current);
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

// Omni: the camera goes to the server as a video track (at most 2 frames a second; it samples
// about one). Without it the call goes on as voice only.
async function openOmniCamera(current) {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 10, max: 15 } },
      audio: false,
    });
    if (call !== current) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    current.cameraStream = stream;
    current.cameraTrack = stream.getVideoTracks()[0];
    ui.omniPreview.srcObject = stream;
    ui.omniPreview.hidden = false;
    ui.omniPreview.play().catch(() => {});
  } catch (err) {
    showError(`${mediaErrorMessage(err, "camera")} Parley hears you but cannot see.`);
  }
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
  if (current.cameraTrack) {
    pc.addTransceiver(current.cameraTrack, {
      direction: "sendonly",
      streams: [current.cameraStream],
      sendEncodings: [{ maxFramerate: 2, maxBitrate: 300_000 }],
    });
  }

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
    response = await apiFetch("/v1/realtime/calls", {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: sdp,
      signal: current.abort.signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
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
  if (response.status === 401) {
    showTokenField(true);
    throw new CallError(
      hasToken()
        ? "The server did not accept the access token. Check it under Settings, then start the call again."
        : "This server needs an access token: enter it under Settings, then start the call again.",
    );
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

export function stopCall() {
  if (!call) return;
  endCall("ended", "");
}

// Tear the call down. `message` (if any) goes to the error line.
function endCall(state, message) {
  const current = call;
  if (!current) return;
  setCall(null);
  current.abort.abort();
  current.timers.forEach(clearTimeout);
  if (current.url && !current.closedByServer) hangUp(current.url);
  if (current.dc) current.dc.close();
  if (current.pc) current.pc.close();
  current.micStream?.getTracks().forEach((track) => track.stop());
  current.cameraStream?.getTracks().forEach((track) => track.stop());
  ui.omniPreview.srcObject = null;
  ui.omniPreview.hidden = true;
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
  apiFetch(`${url}/hangup`, { method: "POST", keepalive: true }).catch(() => {});
}

function resetStats() {
  stats.events = {};
  stats.remoteAudioPeak = 0;
  stats.remoteAudioLoudMs = 0;
  stats.endOfTurn = null;
  stats.truncations = [];
  stats.queue = [];
  ui.queue.hidden = true;
  stats.remoteLoudTimes = [];
  stats.speechStartedTimes = [];
  stats.outputStartedTimes = [];
  stats.playoutDelays = [];
}

// ---------------------------------------------------------------------------------------------
// Events from the server.

/** @type {import("./events.js").EventHandlers} */
const HANDLERS = {
  "session.created": (e) => (call.lastSession = e.session),
  "session.updated": onSessionUpdated,
  "input_audio_buffer.speech_started": (e) => {
    stats.speechStartedTimes.push(Math.round(performance.now()));
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
  "conversation.item.truncated": onItemTruncated,
  // Every model replica is busy: this call waits in line until one is free.
  "parley.queue.updated": (e) => {
    const minutes = Math.max(1, Math.round((e.eta_seconds ?? 0) / 60));
    ui.queue.textContent = `Parley is busy. You are number ${e.position} in line; about ${minutes} min to wait. You can keep this page open.`;
    ui.queue.hidden = false;
    stats.queue.push({ position: e.position, eta_seconds: e.eta_seconds });
  },
  "parley.queue.admitted": () => {
    ui.queue.hidden = true;
    ui.queue.textContent = "";
  },
  // A false interruption (speech over the assistant too short to count): the turn it opened is gone.
  "input_audio_buffer.cleared": () => settlePendingUserEntries(),
  "parley.input_audio_transcription.partial": (e) => onUserPartial(e.item_id, e.transcript),
  "conversation.item.input_audio_transcription.delta": (e) => onUserTranscript(e.item_id, e.delta, false),
  "conversation.item.input_audio_transcription.completed": (e) => onUserTranscript(e.item_id, e.transcript, true),
  "response.created": onResponseCreated,
  "response.output_item.added": (e) => assistantEntry(e.item?.id),
  "response.output_audio_transcript.delta": (e) => onAssistantDelta(e.item_id, e.delta),
  "response.output_text.delta": (e) => onAssistantDelta(e.item_id, e.delta),
  "response.output_audio_transcript.done": (e) => onAssistantTextDone(e.item_id, e.transcript),
  "response.output_text.done": (e) => onAssistantTextDone(e.item_id, e.text),
  "response.done": (e) => {
    stats.endOfTurn = e.response?.parley?.end_of_turn ?? stats.endOfTurn;
    onResponseDone(e.response);
  },
  "output_audio_buffer.started": () => {
    stats.outputStartedTimes.push(Math.round(performance.now()));
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
