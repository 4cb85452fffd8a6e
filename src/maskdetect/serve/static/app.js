// The maskdetect page: pick, drop or capture a photo, send it to /v1/detect, draw what comes back.
// Everything here is served by the app itself; the page loads nothing from elsewhere.
"use strict";

(() => {
  // Fallback colours; /v1/model sends the real ones (maskdetect.labels.CLASS_COLOURS).
  let colours = { covered: "rgb(46,160,67)", incorrect: "rgb(230,145,20)", uncovered: "rgb(210,40,40)" };
  let classes = ["covered", "incorrect", "uncovered"];
  // The server's upload limits (from /v1/model); a photo past them is shrunk here before it is sent.
  let limits = { maxBytes: 10 * 1024 * 1024, maxPixels: 50e6 };

  const $ = (id) => document.getElementById(id);
  const fileInput = $("file-input");
  const dropZone = $("drop-zone");
  const canvas = $("canvas");
  const statusLine = $("status");
  const faceList = $("face-list");
  const camera = $("camera");
  const video = $("camera-video");
  let stream = null;
  let busy = false;

  function setStatus(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  async function loadModelInfo() {
    try {
      const response = await fetch("/v1/model");
      if (!response.ok) return;
      const info = await response.json();
      if (info.colours) colours = info.colours;
      if (Array.isArray(info.classes)) classes = info.classes;
      if (info.limits && info.limits.max_bytes) {
        limits = { maxBytes: info.limits.max_bytes, maxPixels: info.limits.max_pixels || limits.maxPixels };
      }
      $("model-name").textContent = `Model: ${info.name || "unknown"}`;
    } catch (err) {
      $("model-name").textContent = "Model information unavailable";
    }
  }

  async function detect(blob, name) {
    if (busy) return;
    busy = true;
    document.body.classList.add("busy");
    setStatus(`Looking for faces in ${name}…`);
    try {
      const bitmap = await decodeImage(blob);
      const shrunk = bitmap ? await fitLimits(blob, bitmap) : null;
      const form = new FormData();
      form.append("image", shrunk ? shrunk.blob : blob, name);
      const response = await fetch("/v1/detect", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw new Error(body.detail || `the server answered ${response.status}`);
      }
      render(bitmap, body, name, shrunk);
    } catch (err) {
      setStatus(`Could not check ${name}: ${err.message}`, true);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  async function decodeImage(blob) {
    try {
      return await createImageBitmap(blob, { imageOrientation: "from-image" });
    } catch (err) {
      return null; // the server's answer says what was wrong with it
    }
  }

  // A photo over the server's limits (a phone's 48 MP shot is 15-25 MB) is sent as a smaller JPEG
  // instead of being refused; boxes come back in its pixels and are drawn scaled onto the original.
  async function fitLimits(blob, bitmap) {
    const pixels = bitmap.width * bitmap.height;
    if (blob.size <= limits.maxBytes && pixels <= limits.maxPixels) return null;
    let scale = Math.min(1, Math.sqrt(limits.maxPixels / pixels));
    for (let tries = 0; tries < 8; tries++, scale *= 0.8) {
      const frame = document.createElement("canvas");
      frame.width = Math.max(1, Math.round(bitmap.width * scale));
      frame.height = Math.max(1, Math.round(bitmap.height * scale));
      const ctx = frame.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(bitmap, 0, 0, frame.width, frame.height);
      const small = await new Promise((resolve) => frame.toBlob(resolve, "image/jpeg", 0.92));
      if (small && small.size <= limits.maxBytes) {
        return { blob: small, width: frame.width, height: frame.height, from: [bitmap.width, bitmap.height] };
      }
    }
    return null; // the server's answer will say what is wrong
  }

  function render(bitmap, result, name, shrunk = null) {
    const faces = result.faces || [];
    const width = bitmap ? bitmap.width : result.width;
    const height = bitmap ? bitmap.height : result.height;
    // Draw at the size the canvas is shown (small photos scaled up), so labels stay sharp.
    canvas.hidden = false;
    $("placeholder").hidden = true;
    const shown = canvas.parentElement.clientWidth * (window.devicePixelRatio || 1);
    const scale = Math.min(4, Math.max(1, shown / width));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    canvas.dataset.scale = String(scale);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    if (bitmap) {
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#e5e7eb";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    // Boxes are in the server's pixel frame (which the browser may have decoded at another size).
    const sx = canvas.width / result.width;
    const sy = canvas.height / result.height;
    const side = Math.min(canvas.width, canvas.height);
    const line = Math.max(2, Math.round(side / 250));
    const fontSize = Math.max(13, Math.round(side / 36));
    ctx.font = `600 ${fontSize}px system-ui, -apple-system, "Segoe UI", sans-serif`;
    ctx.textBaseline = "top";
    const rects = faces.map((face) => {
      const [x0, y0, x1, y1] = face.box;
      return { x: x0 * sx, y: y0 * sy, w: (x1 - x0) * sx, h: (y1 - y0) * sy };
    });
    rects.forEach((r, i) => {
      ctx.lineWidth = line;
      ctx.strokeStyle = colours[faces[i].label] || "#333";
      ctx.strokeRect(r.x, r.y, r.w, r.h);
    });
    // Labels after every box, so no box crosses a label; each goes above its box, else inside
    // its top edge, else below it: wherever it does not cover a label already placed.
    const placed = [];
    const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    rects.forEach((r, i) => {
      const face = faces[i];
      const text = `${i + 1} ${face.label} ${Math.round(face.score * 100)}%`;
      const w = ctx.measureText(text).width + 10;
      const h = fontSize + 8;
      const x = Math.min(Math.max(0, r.x - line / 2), canvas.width - w);
      const candidates = [r.y - h - line / 2, r.y + line / 2, r.y + r.h + line / 2]
        .filter((y) => y >= 0 && y + h <= canvas.height)
        .map((y) => ({ x, y, w, h }));
      const spot = candidates.find((c) => !placed.some((p) => overlaps(c, p))) ||
        candidates[0] || { x, y: Math.max(0, r.y), w, h };
      placed.push(spot);
      ctx.fillStyle = colours[face.label] || "#333";
      ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, spot.x + 5, spot.y + 4);
    });
    canvas.dataset.boxes = String(faces.length);
    if (bitmap && bitmap.close) bitmap.close();

    faceList.replaceChildren(...faces.map((face, i) => {
      const item = document.createElement("li");
      item.dataset.label = face.label;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colours[face.label] || "#333";
      item.append(swatch, `Face ${i + 1}: ${face.label} (${Math.round(face.score * 100)}%)`);
      return item;
    }));
    faceList.dataset.count = String(faces.length);

    const counts = result.counts || {};
    for (const cls of classes) {
      const cell = document.querySelector(`[data-count-for="${cls}"]`);
      if (cell) cell.textContent = String(counts[cls] || 0);
    }
    const parts = classes.filter((c) => counts[c]).map((c) => `${counts[c]} ${c}`);
    const sent = shrunk
      ? ` (${shrunk.from.join("×")} sent as ${shrunk.width}×${shrunk.height} to fit the server's limits)`
      : "";
    setStatus((faces.length
      ? `Found ${plural(faces.length, "face")}: ${parts.join(", ")}.`
      : `No faces found in ${name}.`) + sent);
  }

  function takeFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      setStatus(`${file.name} is not an image (${file.type}).`, true);
      return;
    }
    detect(file, file.name || "the photo");
  }

  $("choose-button").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    takeFile(fileInput.files[0]);
    fileInput.value = ""; // choosing the same file again still fires "change"
  });

  for (const type of ["dragenter", "dragover"]) {
    dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
  }
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    takeFile(event.dataTransfer.files[0]);
  });

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus("This browser offers no camera here (it needs localhost or https).", true);
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
    } catch (err) {
      setStatus(`The camera could not start: ${err.message}`, true);
      return;
    }
    const captureButton = $("camera-capture");
    captureButton.disabled = true; // until the first frame arrives
    video.addEventListener("loadeddata", () => {
      captureButton.disabled = false;
      captureButton.focus();
    }, { once: true });
    video.srcObject = stream;
    camera.hidden = false;
    setStatus("Camera on. Press Capture to check the current frame.");
  }

  function stopCamera() {
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    camera.hidden = true;
    $("camera-start").focus();
  }

  function capture() {
    if (!stream || !video.videoWidth) {
      setStatus("The camera has no picture yet; try again in a moment.", true);
      return;
    }
    const frame = document.createElement("canvas");
    frame.width = video.videoWidth;
    frame.height = video.videoHeight;
    frame.getContext("2d").drawImage(video, 0, 0);
    frame.toBlob((blob) => detect(blob, "the camera frame"), "image/jpeg", 0.92);
  }

  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  $("camera-capture").addEventListener("click", capture);

  loadModelInfo();
})();
