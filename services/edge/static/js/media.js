// Media the page captures and plays: the audio meters (mic and the assistant's voice), the
// camera preview, and images made small enough to send.

import { insecureContextMessage, mediaErrorMessage, showError } from "./page.js";
import { call, stats, ui } from "./state.js";

const MAX_IMAGE_SIDE = 1024; // px on the long side; larger photos only cost upload time
const JPEG_QUALITY = 0.85;
const METER_INTERVAL_MS = 50;
const LOUD_LEVEL = 0.02; // remote level counted as "sound" in parleyStats.remoteAudioLoudMs
const PLAYOUT_SAMPLE_TICKS = 10; // meter ticks between samples of the browser's playout delay

// ---------------------------------------------------------------------------------------------
// Audio: one AudioContext for the page, analysers for the mic and the assistant's voice.

let audioContext = null;

export function ensureAudioContext() {
  // Created inside the Start click so that autoplay rules let it run.
  if (!audioContext) {
    // Safari before 14.1 has only the prefixed name.
    const Context = window.AudioContext || /** @type {any} */ (window).webkitAudioContext;
    if (!Context) return null;
    audioContext = new Context();
  }
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

export function makeAnalyser(stream) {
  const context = ensureAudioContext();
  if (!context) return null;
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser); // not to the destination: playback is the <audio> element's job
  return { source, analyser, buffer: new Float32Array(analyser.fftSize) };
}

export function releaseAnalyser(meter) {
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
let meterTicks = 0;
let lastJitterBuffer = null;
let lastMeterTick = 0;

export function startMeters() {
  if (meterTimer) return;
  lastMeterTick = performance.now();
  // setInterval rather than requestAnimationFrame: the stats must keep counting when the tab
  // is hidden or rendering is throttled.
  meterTimer = setInterval(updateMeters, METER_INTERVAL_MS);
}

export function stopMeters() {
  clearInterval(meterTimer);
  meterTimer = null;
  lastJitterBuffer = null; // the next call's counters start from zero
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
    if (level > LOUD_LEVEL) {
      stats.remoteAudioLoudMs += elapsed;
      stats.remoteLoudTimes.push(Math.round(performance.now()));
      if (stats.remoteLoudTimes.length > 5000) stats.remoteLoudTimes.shift();
    }
    drawMeter(ui.voiceMeter, level);
    ui.voiceState.textContent = level > LOUD_LEVEL ? "speaking" : "silent";
  }
  if (call?.pc && ++meterTicks % PLAYOUT_SAMPLE_TICKS === 0) samplePlayoutDelay(call.pc).catch(() => {});
}

/**
 * The browser's own delay between receiving the assistant's audio and playing it: its jitter
 * buffer, which grows when packets arrive unevenly (as from a loaded server). The average over
 * the last samples' interval, from getStats, goes to parleyStats.playoutDelays as [when, ms].
 * @param {RTCPeerConnection} pc
 */
async function samplePlayoutDelay(pc) {
  const report = await pc.getStats();
  for (const entry of report.values()) {
    if (entry.type !== "inbound-rtp" || entry.kind !== "audio") continue;
    const now = { delay: entry.jitterBufferDelay ?? 0, emitted: entry.jitterBufferEmittedCount ?? 0 };
    const last = lastJitterBuffer;
    lastJitterBuffer = now;
    if (last && now.emitted > last.emitted) {
      const ms = ((now.delay - last.delay) / (now.emitted - last.emitted)) * 1000;
      stats.playoutDelays.push([Math.round(performance.now()), Math.round(ms)]);
      if (stats.playoutDelays.length > 2000) stats.playoutDelays.shift();
    }
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
// Images: downscaled to JPEG before they are attached.

export function toJpegDataUrl(source, width, height) {
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

// ---------------------------------------------------------------------------------------------
// Camera: a preview in the composer; chat.js takes the snapshot.

export let cameraStream = null; // read-only outside this module

export async function openCamera() {
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
    // muted inline video may still be loading; the snapshot (chat.js) waits for a frame
  }
  ui.snap.focus();
}

export function closeCamera() {
  if (cameraStream) cameraStream.getTracks().forEach((track) => track.stop());
  cameraStream = null;
  ui.cameraVideo.srcObject = null;
  ui.camera.hidden = true;
  ui.cameraButton.setAttribute("aria-expanded", "false");
}
