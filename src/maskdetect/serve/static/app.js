// The maskdetect page: pick, drop or capture a photo, send it to /v1/detect, draw what comes back;
// click a face (or its "Why?" button) to send the same photo to /v1/explain with that face's box.
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
  // The photo as sent (shrunk or not) and its faces: "Why?" sends it again with one face's box.
  let shown = null;
  let explaining = null; // the AbortController of the explanation in flight

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
    clearWhy();
    shown = null;
    try {
      const bitmap = await decodeImage(blob);
      const local = window.maskdetectPrivate;
      if (local && local.active()) {
        // Private mode (private/private.js): the photo is checked here and sent nowhere.
        if (!bitmap) throw new Error("this browser cannot decode it (the server reads HEIC too: turn private mode off)");
        if (bitmap.width * bitmap.height > limits.maxPixels) { // the server's bound holds here too
          throw new Error(`${bitmap.width}×${bitmap.height} is more than ${Math.round(limits.maxPixels / 1e6)} `
            + "megapixels");
        }
        // The pixels as the server reads them: not converted by the photo's colour profile (a phone's
        // Display P3 photo would otherwise give other pixels, hence other scores), alpha not premultiplied.
        const raw = await createImageBitmap(blob, {
          imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
        });
        const body = await local.detect(raw).finally(() => raw.close());
        render(bitmap, body, name);
        setStatus(`${statusLine.textContent} Checked in this browser in ${Math.round(body.ms)} ms; `
          + "nothing was sent.");
        canvas.dataset.ms = String(body.ms);
        shown = { private: true, name, faces: body.faces, result: body };
        return;
      }
      const shrunk = bitmap ? await fitLimits(blob, bitmap) : null;
      const form = new FormData();
      form.append("image", shrunk ? shrunk.blob : blob, name);
      const response = await fetch("/v1/detect", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw new Error(body.detail || `the server answered ${response.status}`);
      }
      render(bitmap, body, name, shrunk);
      shown = { blob: shrunk ? shrunk.blob : blob, name, faces: body.faces || [], result: body };
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

  // The label rule of the annotated pictures (maskdetect.draw.place_labels, layout_labels): largest
  // face first, each label above its box if free, else below, else inside its top, else at the nearest
  // free spot.
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  function placeLabels(rects, sizes, width, height, near) {
    const area = (r) => r.w * r.h;
    const order = rects.map((_, i) => i)
      .sort((a, b) => area(rects[b]) - area(rects[a]) || rects[a].y - rects[b].y || rects[a].x - rects[b].x);
    const placed = [];
    const spots = new Array(rects.length).fill(null);
    for (const i of order) {
      const r = rects[i];
      const { w, h } = sizes[i];
      const clampX = (x) => Math.max(0, Math.min(x, width - w));
      const clampY = (y) => Math.max(0, Math.min(y, height - h));
      const free = (c) => !placed.some((p) => overlaps(c, p));
      let spot = [r.y - h, r.y + r.h, r.y]
        .filter((y) => y >= 0 && y + h <= height)
        .map((y) => ({ x: clampX(r.x), y, w, h }))
        .find(free);
      if (!spot) {
        // The nearest free spot lies against the box, a placed label or the canvas's edge.
        const xs = [r.x, r.x + r.w - w, r.x + r.w, r.x - w, 0, width - w,
          ...placed.flatMap((p) => [p.x + p.w, p.x - w])];
        const ys = [r.y - h, r.y + r.h, r.y, r.y + r.h - h, 0, height - h,
          ...placed.flatMap((p) => [p.y + p.h, p.y - h])];
        const limit = near === null ? Infinity : near * h;
        let best = Infinity;
        for (const x of new Set(xs.map(clampX))) {
          for (const y of new Set(ys.map(clampY))) {
            const gap = Math.hypot(Math.max(0, r.x - (x + w), x - (r.x + r.w)),
              Math.max(0, r.y - (y + h), y - (r.y + r.h)));
            const cost = gap + 1e-3 * Math.hypot(x - r.x, y - (r.y - h));
            if (gap <= limit && cost < best && free({ x, y, w, h })) {
              best = cost;
              spot = { x, y, w, h };
            }
          }
        }
      }
      if (spot) {
        placed.push(spot);
        spots[i] = spot;
      }
    }
    return spots;
  }

  function layoutLabels(ctx, faces, rects, fontSize, width, height) {
    const pad = Math.round(fontSize / 4);
    const texts = faces.map((face, i) => [`${i + 1} ${face.label} ${Math.round(face.score * 100)}%`, `${i + 1}`]);
    let spots = [];
    let sizes = [];
    let form = 0;
    // Whole labels within two label heights of their faces, unless together they would cover more than
    // 15% of the photo (a crowd: they would hide the faces); else the face numbers, wherever there is room.
    for (const [which, near, most] of [[0, 2, 0.15], [1, null, Infinity]]) {
      form = which;
      sizes = texts.map((t) => ({ w: ctx.measureText(t[form]).width + 2 * pad, h: fontSize + 2 * pad }));
      if (sizes.reduce((sum, r) => sum + r.w * r.h, 0) > most * width * height) continue;
      spots = placeLabels(rects, sizes, width, height, near);
      if (spots.every(Boolean)) break;
    }
    return spots.map((spot, i) => {
      const r = rects[i];
      // No room left even for the numbers: the label goes above its face, over whatever is there.
      const s = spot || { x: Math.max(0, r.x), y: Math.max(0, r.y - sizes[i].h), ...sizes[i] };
      const [lx, bx] = nearestEnds(s.x, s.x + s.w, r.x, r.x + r.w);
      const [ly, by] = nearestEnds(s.y, s.y + s.h, r.y, r.y + r.h);
      const leader = Math.hypot(bx - lx, by - ly) > Math.max(3, s.h / 3) ? [lx, ly, bx, by] : null;
      return { ...s, text: texts[i][form], pad, leader };
    });
  }

  // The nearest points of two intervals, one on each (the middle of their overlap when they overlap).
  function nearestEnds(a0, a1, b0, b1) {
    if (a1 <= b0) return [a1, b0];
    if (b1 <= a0) return [a0, b1];
    const middle = (Math.max(a0, b0) + Math.min(a1, b1)) / 2;
    return [middle, middle];
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
    // Labels after every box, so no box crosses a label, and none covers another (layoutLabels):
    // whole labels where each finds room near its face, else the face numbers alone. A label moved
    // away from its face is tied to it by a thin line, drawn first so that it crosses no label.
    const labels = layoutLabels(ctx, faces, rects, fontSize, canvas.width, canvas.height);
    labels.forEach((spot, i) => {
      if (!spot.leader) return;
      ctx.lineWidth = Math.max(1, line / 2);
      ctx.strokeStyle = colours[faces[i].label] || "#333";
      ctx.beginPath();
      ctx.moveTo(spot.leader[0], spot.leader[1]);
      ctx.lineTo(spot.leader[2], spot.leader[3]);
      ctx.stroke();
    });
    labels.forEach((spot, i) => {
      ctx.fillStyle = colours[faces[i].label] || "#333";
      ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
      ctx.fillStyle = "#fff";
      ctx.fillText(spot.text, spot.x + spot.pad, spot.y + spot.pad);
    });
    canvas.dataset.labels = JSON.stringify(labels.map((s) => [s.x, s.y, s.w, s.h, s.text]));
    canvas.dataset.boxes = String(faces.length);
    if (bitmap && bitmap.close) bitmap.close();

    faceList.replaceChildren(...faces.map((face, i) => {
      const item = document.createElement("li");
      item.dataset.label = face.label;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colours[face.label] || "#333";
      const why = document.createElement("button");
      why.type = "button";
      why.className = "button why-button";
      why.textContent = "Why?";
      why.setAttribute("aria-label", `Why is face ${i + 1} ${face.label}?`);
      why.addEventListener("click", () => explainFace(i));
      item.append(swatch, `Face ${i + 1}: ${face.label} (${Math.round(face.score * 100)}%)`, why);
      return item;
    }));
    faceList.dataset.count = String(faces.length);
    $("why-hint").hidden = faces.length === 0;
    canvas.classList.toggle("clickable", faces.length > 0);

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

  // "Why?": the library's occlusion map of one face, blended on it, and its heat on the nose and mouth.
  function clearWhy() {
    if (explaining) explaining.abort();
    explaining = null;
    $("why").hidden = true;
    $("why-image").hidden = true;
    $("why-image").removeAttribute("src");
    $("why-share").textContent = "";
    delete $("why").dataset.face;
  }

  async function explainFace(index) {
    if (!shown || !shown.faces[index]) return;
    if (explaining) explaining.abort();
    if (shown.private) { // "Why?" runs on the server: in private mode the photo stays here
      $("why").hidden = false;
      $("why-status").textContent = "Why? runs on the server: turn private mode off and check the photo "
        + "again to ask it.";
      return;
    }
    const controller = new AbortController();
    explaining = controller;
    const face = shown.faces[index];
    const panel = $("why");
    const whyStatus = $("why-status");
    panel.hidden = false;
    panel.dataset.face = String(index);
    panel.setAttribute("aria-busy", "true");
    $("why-heading").textContent = `Why is face ${index + 1} ${face.label}?`;
    $("why-image").hidden = true;
    $("why-share").textContent = "";
    whyStatus.classList.remove("error");
    whyStatus.textContent = `Covering face ${index + 1} part by part to see where the classifier looks…`;
    faceList.querySelectorAll("li").forEach((li, i) => li.classList.toggle("explained", i === index));
    try {
      const form = new FormData();
      form.append("image", shown.blob, shown.name);
      const box = face.box.map((v) => String(v)).join(",");
      const response = await fetch(`/v1/explain?box=${encodeURIComponent(box)}`, {
        method: "POST", body: form, signal: controller.signal,
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.detail || `the server answered ${response.status}`);
      if (explaining !== controller) return; // another face was clicked meanwhile
      showWhy(index, body);
    } catch (err) {
      if (err.name === "AbortError") return;
      whyStatus.textContent = `Could not explain face ${index + 1}: ${err.message}`;
      whyStatus.classList.add("error");
    } finally {
      if (explaining === controller) {
        explaining = null;
        panel.removeAttribute("aria-busy");
      }
    }
  }

  function showWhy(index, body) {
    const percent = (v) => `${Math.round(v * 100)}%`;
    const p = body.probabilities[body.predicted];
    const image = $("why-image");
    image.src = body.overlay;
    image.alt = `Face ${index + 1} with the occlusion heat map of ${body.predicted} blended on it`;
    image.hidden = false;
    const region = body.nose_mouth || {};
    $("why-share").textContent = region.heat_share === null || region.heat_share === undefined
      ? `Nose and mouth: not measured (${region.note || "no face mesh"}).`
      : `Nose and mouth: ${percent(region.heat_share)} of the heat (they are ${percent(region.area_share)} `
        + "of the face crop).";
    $("why-status").textContent = `Face ${index + 1}: ${body.predicted} (${percent(p)}); `
      + `the map covers ${body.windows} windows of ${body.patch} px.`;
    $("why").dataset.share = region.heat_share == null ? "" : String(region.heat_share);
  }

  // The face under a click on the canvas: its label, else the smallest box holding the point.
  function faceAt(event) {
    if (!shown || !shown.faces.length) return -1;
    const rect = canvas.getBoundingClientRect();
    // The canvas is shown with object-fit: contain, so the picture may not fill its box.
    const fit = Math.min(rect.width / canvas.width, rect.height / canvas.height);
    const cx = (event.clientX - rect.left - (rect.width - canvas.width * fit) / 2) / fit;
    const cy = (event.clientY - rect.top - (rect.height - canvas.height * fit) / 2) / fit;
    const labels = JSON.parse(canvas.dataset.labels || "[]");
    const label = labels.findIndex(([lx, ly, lw, lh]) => cx >= lx && cx <= lx + lw && cy >= ly && cy <= ly + lh);
    if (label >= 0) return label;
    const x = cx * (shown.result.width / canvas.width);
    const y = cy * (shown.result.height / canvas.height);
    let best = -1;
    let bestArea = Infinity;
    shown.faces.forEach((face, i) => {
      const [x0, y0, x1, y1] = face.box;
      const area = (x1 - x0) * (y1 - y0);
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && area < bestArea) {
        best = i;
        bestArea = area;
      }
    });
    return best;
  }

  canvas.addEventListener("click", (event) => {
    const index = faceAt(event);
    if (index >= 0) explainFace(index);
  });

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
    const local = window.maskdetectPrivate;
    if (local && local.active()) {
      video.addEventListener("loadeddata", () => liveInBrowser(local, stream), { once: true });
    }
  }

  // Private mode's camera: every frame checked in this browser, boxes and labels drawn live.
  async function liveInBrowser(local, live) {
    let frames = 0;
    const times = []; // when the last 30 frames were drawn: frames/s over them
    shown = null;
    $("camera-capture").hidden = true; // every frame is checked already
    while (stream === live && local.active()) {
      if (!video.videoWidth) { // no picture yet
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const frame = new OffscreenCanvas(video.videoWidth, video.videoHeight);
      frame.getContext("2d").drawImage(video, 0, 0);
      const bitmap = frame.transferToImageBitmap();
      let body;
      try {
        body = await local.detect(bitmap, "camera");
      } catch (err) {
        setStatus(`Private mode could not check the camera frame: ${err.message}`, true);
        break;
      }
      if (stream !== live) break;
      render(bitmap, body, "the camera frame");
      frames += 1;
      times.push(performance.now());
      if (times.length > 30) times.shift();
      const fps = times.length > 1 ? (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000) : 0;
      canvas.dataset.frames = String(frames);
      canvas.dataset.fps = fps.toFixed(2);
      setStatus(`Live in this browser (nothing is sent): ${plural(body.faces.length, "face")}, `
        + `${fps.toFixed(1)} frames/s.`);
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page paint and answer between frames
    }
    $("camera-capture").hidden = false;
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
