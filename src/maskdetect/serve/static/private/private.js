// Private mode's switch: when on, the page (app.js) hands each photo or camera frame to
// window.maskdetectPrivate.detect instead of POST /v1/detect, and nothing of the photo is sent.
// The models and onnxruntime-web come from this server (GET /v1/web-model, /static/ort/); when they
// cannot load, the switch goes back off and says why: photos are then checked on the server.
import { createPipeline } from "./pipeline.js";

const toggle = document.getElementById("private-mode");
const note = document.getElementById("private-status");
const box = document.getElementById("private-box");
let pipeline = null;
let loading = null;

function say(state, text) {
  box.dataset.state = state;
  note.textContent = text;
  note.classList.toggle("error", state === "unavailable");
}

async function fetchModel(entry) {
  const response = await fetch(entry.url);
  if (!response.ok) throw new Error(`${entry.url} answered ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (crypto.subtle) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== entry.sha256) throw new Error(`${entry.url} is not the model the server described (sha256 differs)`);
  }
  return bytes;
}

async function load() {
  const response = await fetch("/v1/web-model");
  const spec = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(spec.detail || `the server answered ${response.status}`);
  let ort;
  try {
    ort = await import(spec.ort.module);
  } catch (err) {
    throw new Error(`onnxruntime-web did not load (${err.message})`);
  }
  if (typeof WebAssembly !== "object") throw new Error("this browser runs no WebAssembly");
  ort.env.wasm.wasmPaths = spec.ort.wasm_paths;
  ort.env.wasm.numThreads = 1; // no cross-origin isolation needed; measured fast enough
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  return createPipeline(ort, spec, fetchModel);
}

async function switchOn() {
  say("loading", "Loading the models into this browser…");
  const started = performance.now();
  try {
    loading = load();
    pipeline = await loading;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    say("on", `On: photos are checked in this browser and never sent (models loaded in ${seconds} s).`);
  } catch (err) {
    pipeline = null;
    toggle.checked = false;
    say("unavailable", `Private mode is unavailable: ${err.message}. Photos are checked on the server `
      + "instead (they are not stored there).");
  } finally {
    loading = null;
  }
}

toggle.addEventListener("change", () => {
  if (toggle.checked) {
    if (!pipeline) switchOn();
    else say("on", "On: photos are checked in this browser and never sent.");
  } else {
    say("off", "Off: photos are sent to the server to be checked.");
  }
});

// The pixels of a decoded image (ImageBitmap) or a video frame, as the server would decode them.
function pixelsOf(source, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  return ctx.getImageData(0, 0, width, height).data;
}

async function detectNow(source, mode) {
  if (loading) await loading;
  if (!pipeline) throw new Error("private mode is not loaded");
  const width = source.width;
  const height = source.height;
  const started = performance.now();
  const result = await pipeline.detect(pixelsOf(source, width, height), width, height, mode);
  result.ms = performance.now() - started;
  window.maskdetectPrivate.last = result; // what the page drew (the browser tests compare it)
  return result;
}

let queue = Promise.resolve();

window.maskdetectPrivate = {
  active: () => toggle.checked,
  detect(source, mode = "photo") {
    // one call at a time: a session runs one at once (a captured photo beside the live camera)
    const run = queue.then(() => detectNow(source, mode));
    queue = run.catch(() => {});
    return run;
  },
};
say("off", "Off: photos are sent to the server to be checked.");
