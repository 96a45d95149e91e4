#!/usr/bin/env node
// Drive one call on Parley's call page in headless Chromium and print what happened as one
// JSON line. The Python e2e tests run this script and assert on the JSON.
//
//   node tests/e2e/drive_call.mjs --url http://127.0.0.1:8006/ --mode half_duplex \
//     --wav /tmp/question.wav --screenshot /tmp/call.png --timeout-ms 60000 --user-data-dir /tmp/profile
//
// Options:
//   --url URL             the call page (required)
//   --mode MODE           chat | half_duplex | full_duplex | omni (default half_duplex)
//   --turn-end KIND       voice modes: server_vad (a fixed pause, the default) | semantic_vad
//   --responses N         wait for N replies (default 1), e.g. 2 when the fake mic interrupts the first
//   --text TEXT           chat mode: the message to type and send
//   --wav FILE            the fake microphone (Chromium loops it); without it Chromium plays a beep
//   --talk-ms N           chat mode without --text: hold the push-to-talk button for N ms
//   --screenshot FILE     full-page PNG taken when the call is done (or timed out)
//   --timeout-ms N        how long to wait for the reply (default 60000)
//   --user-data-dir DIR   the browser profile (default: a new temporary folder)
//   --viewport WxH        window size (default 1280x800), e.g. 360x740 for a phone
//   --chromium PATH       the browser (default /usr/bin/chromium; never downloaded)
//
// Exit status: 0 whenever the JSON was printed, even with "ok": false; non-zero on a crash.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--autoplay-policy=no-user-gesture-required",
  "--allow-loopback-in-peer-connection",
];
const MIN_REMOTE_PEAK = 0.05; // the assistant's voice was really heard, not just silence frames
const VOICE_END_WAIT_MS = 20_000; // longest wait for the spoken reply to finish once the text is in

class UsageError extends Error {}

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        url: { type: "string" },
        mode: { type: "string", default: "half_duplex" },
        "turn-end": { type: "string", default: "server_vad" },
        responses: { type: "string", default: "1" },
        text: { type: "string" },
        wav: { type: "string" },
        "talk-ms": { type: "string" },
        screenshot: { type: "string" },
        "timeout-ms": { type: "string", default: "60000" },
        "user-data-dir": { type: "string" },
        viewport: { type: "string", default: "1280x800" },
        chromium: { type: "string", default: "/usr/bin/chromium" },
      },
      strict: true,
    });
  } catch (err) {
    throw new UsageError(err.message);
  }
  const { values } = parsed;
  if (!values.url) throw new UsageError("--url is required");
  if (!["chat", "half_duplex", "full_duplex", "omni"].includes(values.mode)) {
    throw new UsageError("--mode must be chat, half_duplex, full_duplex or omni");
  }
  const responses = Number(values.responses);
  if (!(Number.isInteger(responses) && responses >= 1)) throw new UsageError("--responses must be a whole number >= 1");
  if (!["server_vad", "semantic_vad"].includes(values["turn-end"])) {
    throw new UsageError("--turn-end must be server_vad or semantic_vad");
  }
  const viewport = /^(\d+)x(\d+)$/.exec(values.viewport);
  if (!viewport) throw new UsageError("--viewport must look like 1280x800");
  const timeoutMs = Number(values["timeout-ms"]);
  if (!(timeoutMs > 0)) throw new UsageError("--timeout-ms must be a positive number");
  const talkMs = values["talk-ms"] === undefined ? null : Number(values["talk-ms"]);
  if (values.mode === "chat" && values.text === undefined && !(talkMs > 0)) {
    throw new UsageError("chat mode needs --text (or --talk-ms with --wav)");
  }
  return {
    url: values.url,
    mode: values.mode,
    turnEnd: values["turn-end"],
    responses,
    text: values.text,
    wav: values.wav ? path.resolve(values.wav) : null,
    talkMs,
    screenshot: values.screenshot ? path.resolve(values.screenshot) : null,
    timeoutMs,
    userDataDir: values["user-data-dir"] ?? mkdtempSync(path.join(tmpdir(), "parley-chromium-")),
    viewport: { width: Number(viewport[1]), height: Number(viewport[2]) },
    chromium: values.chromium,
  };
}

// Wait for a page condition until the deadline; false (not an exception) when it never held.
async function waitUntil(page, deadline, predicate, arg) {
  const timeout = Math.max(1, deadline - Date.now());
  try {
    await page.waitForFunction(predicate, arg, { timeout, polling: 100 });
    return true;
  } catch (err) {
    if (err?.name === "TimeoutError") return false;
    throw err;
  }
}

// The call is over (for good or bad) once it left the connecting/connected states.
const callEnded = () => ["ended", "failed"].includes(window.parleyStats?.state);

function replyDone({ needAudio, minPeak, responses }) {
  const stats = window.parleyStats;
  const assistantText = [...document.querySelectorAll("#transcript .entry.assistant .text")].some(
    (el) => el.textContent.trim() !== "",
  );
  const done = (stats.events["response.done"] ?? 0) >= responses;
  const audio = !needAudio || stats.remoteAudioPeak > minPeak;
  return (assistantText && done && audio) || ["ended", "failed"].includes(stats.state);
}

async function snapshot(page) {
  return page.evaluate(() => {
    const texts = (selector) => [...document.querySelectorAll(selector)].map((el) => el.textContent.trim());
    const stats = window.parleyStats ?? { state: "missing", events: {}, remoteAudioPeak: 0, remoteAudioLoudMs: 0 };
    return {
      state: stats.state,
      user: texts("#transcript .entry.user .text"),
      assistant: texts("#transcript .entry.assistant .text"),
      remoteAudioPeak: Number(stats.remoteAudioPeak.toFixed(4)),
      remoteAudioLoudMs: Math.round(stats.remoteAudioLoudMs),
      events: { ...stats.events },
      endOfTurn: stats.endOfTurn ?? null,
      truncations: stats.truncations ?? [],
      assistantTruncated: [...document.querySelectorAll("#transcript .entry.assistant")].map((li) =>
        li.classList.contains("truncated"),
      ),
      remoteLoudTimes: stats.remoteLoudTimes ?? [],
      speechStartedTimes: stats.speechStartedTimes ?? [],
      outputStartedTimes: stats.outputStartedTimes ?? [],
      playoutDelays: stats.playoutDelays ?? [],
      error: document.querySelector("#error")?.textContent ?? "",
    };
  });
}

// Let the assistant finish speaking, so that remoteAudioLoudMs measures the whole reply (and the
// screenshot shows the call at rest). Not a condition of "ok": the reply was already checked.
async function waitForVoiceToEnd(page, deadline, responses) {
  const spoken = () => {
    const events = window.parleyStats.events;
    return (events["output_audio_buffer.started"] ?? 0) > 0;
  };
  if (!(await page.evaluate(spoken))) return;
  const ended = (wanted) => {
    const { events, state } = window.parleyStats;
    const over = (events["output_audio_buffer.stopped"] ?? 0) + (events["output_audio_buffer.cleared"] ?? 0);
    return over >= wanted || ["ended", "failed"].includes(state);
  };
  await waitUntil(page, Math.min(deadline, Date.now() + VOICE_END_WAIT_MS), ended, responses);
  await page.waitForTimeout(300); // the last packets reach the analyser after the server's event
}

async function holdToTalk(page, ms) {
  const talk = page.locator("#talk");
  await talk.waitFor({ state: "visible" });
  const box = await talk.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.waitForTimeout(ms);
  await page.mouse.up();
}

async function run(options) {
  const args = [...CHROMIUM_FLAGS];
  if (options.wav) args.push(`--use-file-for-fake-audio-capture=${options.wav}`);
  const context = await chromium.launchPersistentContext(options.userDataDir, {
    executablePath: options.chromium,
    headless: true,
    args,
    viewport: options.viewport,
  });
  const consoleErrors = [];
  const result = { ok: false, reason: null };
  try {
    await context.grantPermissions(["microphone", "camera"], { origin: new URL(options.url).origin });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));

    const deadline = Date.now() + options.timeoutMs;
    try {
      await page.goto(options.url, { waitUntil: "load", timeout: options.timeoutMs });
    } catch (err) {
      result.reason = `the page did not load: ${err.message.split("\n")[0]}`;
      return { ...result, state: "idle", user: [], assistant: [], remoteAudioPeak: 0, remoteAudioLoudMs: 0, events: {}, error: "", console_errors: consoleErrors };
    }
    await page.waitForFunction(() => window.parleyStats !== undefined, null, { timeout: 10_000 });
    // Wait for the page's config so the mode options are final before choosing one.
    await page.waitForFunction(
      (mode) => !document.querySelector(`#mode option[value="${mode}"]`)?.disabled,
      options.mode,
      { timeout: 10_000 },
    );
    await page.selectOption("#mode", options.mode);
    if (options.mode !== "chat") await page.selectOption("#turn-end", options.turnEnd);
    await page.click("#start");

    const connected = await waitUntil(
      page,
      deadline,
      () => ["connected", "ended", "failed"].includes(window.parleyStats.state),
    );
    const state = await page.evaluate(() => window.parleyStats.state);
    if (!connected || state !== "connected") {
      result.reason = connected ? `the call ${state} before connecting` : "timed out connecting";
    } else {
      if (options.mode === "chat") {
        if (options.text !== undefined) {
          await page.fill("#text-input", options.text);
          await page.click("#send");
        } else {
          await holdToTalk(page, options.talkMs);
        }
      }
      const needAudio = options.mode !== "chat";
      const wanted = { needAudio, minPeak: MIN_REMOTE_PEAK, responses: options.responses };
      const replied = await waitUntil(page, deadline, replyDone, wanted);
      if (await page.evaluate(callEnded)) result.reason = "the call ended before the reply was complete";
      else if (!replied) result.reason = "timed out waiting for the reply";
      else await waitForVoiceToEnd(page, deadline, options.responses);
    }

    const seen = await snapshot(page);
    if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
    if (await page.isEnabled("#stop")) {
      await page.click("#stop");
      await waitUntil(page, Date.now() + 3000, callEnded);
      await page.waitForTimeout(300); // let the hang-up request leave before the browser closes
    }
    const finalState = await page.evaluate(() => window.parleyStats.state);

    if (!result.reason) {
      const checks = [
        [seen.state === "connected", `state was ${seen.state}`],
        [seen.assistant.some((text) => text !== ""), "no assistant text"],
        [(seen.events["response.done"] ?? 0) >= options.responses, `fewer than ${options.responses} response.done`],
        [options.mode === "chat" || seen.remoteAudioPeak > MIN_REMOTE_PEAK, "the assistant's voice was not heard"],
        [options.mode === "chat" || seen.user.some((text) => text !== ""), "no user transcript"],
      ];
      const failed = checks.find(([passed]) => !passed);
      result.reason = failed ? failed[1] : null;
    }
    result.ok = result.reason === null;
    return { ...result, ...seen, final_state: finalState, console_errors: consoleErrors };
  } finally {
    await context.close();
  }
}

try {
  const options = parseOptions(process.argv.slice(2));
  const result = await run(options);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  const usage = err instanceof UsageError;
  process.stderr.write(`drive_call: ${usage ? err.message : (err?.stack ?? err)}\n`);
  process.exit(usage ? 64 : 2); // 64: EX_USAGE
}
