// The server's photo pipeline, run in the browser (private mode): RetinaFace candidates, the face
// verifier, the crop and the classifier, from the numbers GET /v1/web-model gives. Each step is a
// port of its Python original, named beside it; the resizes copy the server's arithmetic to the bit
// (OpenCV's area and linear resize for the detector's input, Pillow's antialiased bilinear for the
// crop: tests/test_private_mode.py), so the same pixels give the same boxes and labels.

// Python's round(): half to even (the server rounds sizes and crop corners with it).
export function pyRound(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// cv2.resize(INTER_AREA) of an RGBA picture, shrinking (faces/resize.py): each output pixel is the
// mean of the source area it covers, fractional pixels weighed by the part covered.
function areaTable(ssize, dsize) {
  const scale = 1 / (dsize / ssize); // as OpenCV computes it (1 / inv_scale)
  const table = [];
  for (let d = 0; d < dsize; d++) {
    const f1 = d * scale;
    const f2 = f1 + scale;
    const cell = Math.min(scale, ssize - f1);
    let s2 = Math.min(Math.floor(f2), ssize - 1);
    const s1 = Math.min(Math.ceil(f1), s2);
    const parts = [];
    if (s1 - f1 > 1e-3) parts.push([s1 - 1, (s1 - f1) / cell]);
    for (let s = s1; s < s2; s++) parts.push([s, 1 / cell]);
    if (f2 - s2 > 1e-3) parts.push([s2, Math.min(f2 - s2, 1, cell) / cell]);
    table.push(parts);
  }
  return table;
}

// cvRound: to the nearest, halves to even
function roundEven(v) {
  const r = Math.round(v);
  return v - Math.floor(v) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// OpenCV's fast path for whole-number factors: the mean of each k x l block (2 x 2 rounds halves up,
// as its SIMD code does; other factors as its scalar code, halves to even).
function resizeAreaWhole(src, sw, sh, dw, dh) {
  const kx = sw / dw;
  const ky = sh / dh;
  const area = kx * ky;
  const scale = Math.fround(1 / area);
  const out = new Uint8ClampedArray(dw * dh * 4);
  for (let dy = 0; dy < dh; dy++) {
    for (let dx = 0; dx < dw; dx++) {
      const o = (dy * dw + dx) * 4;
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let y = dy * ky; y < (dy + 1) * ky; y++) {
          for (let x = dx * kx; x < (dx + 1) * kx; x++) sum += src[(y * sw + x) * 4 + c];
        }
        out[o + c] = kx === 2 && ky === 2 ? (sum + 2) >> 2 : roundEven(Math.fround(sum * scale));
      }
      out[o + 3] = 255;
    }
  }
  return out;
}

function resizeArea(src, sw, sh, dw, dh) {
  if (sw % dw === 0 && sh % dh === 0) return resizeAreaWhole(src, sw, sh, dw, dh);
  const xt = areaTable(sw, dw);
  const yt = areaTable(sh, dh);
  // the x table flattened: for each output column its source pixels' offsets and weights
  const xs = [];
  const xw = [];
  const xstart = new Int32Array(dw + 1);
  xt.forEach((parts, dx) => {
    xstart[dx] = xs.length;
    for (const [sx, alpha] of parts) { xs.push(sx * 4); xw.push(Math.fround(alpha)); }
  });
  xstart[dw] = xs.length;
  const xo = Int32Array.from(xs);
  const xa = Float32Array.from(xw);
  const out = new Uint8ClampedArray(dw * dh * 4);
  const acc = new Float32Array(dw * 3); // OpenCV sums in float: so do we, for the same roundings
  const f = Math.fround;
  for (let dy = 0; dy < dh; dy++) {
    acc.fill(0);
    for (const [sy, betaF] of yt[dy]) {
      const beta = f(betaF);
      const base = sy * sw * 4;
      for (let dx = 0; dx < dw; dx++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let k = xstart[dx]; k < xstart[dx + 1]; k++) {
          const i = base + xo[k];
          r = f(r + f(src[i] * xa[k]));
          g = f(g + f(src[i + 1] * xa[k]));
          b = f(b + f(src[i + 2] * xa[k]));
        }
        acc[dx * 3] = f(acc[dx * 3] + f(r * beta));
        acc[dx * 3 + 1] = f(acc[dx * 3 + 1] + f(g * beta));
        acc[dx * 3 + 2] = f(acc[dx * 3 + 2] + f(b * beta));
      }
    }
    for (let dx = 0; dx < dw; dx++) {
      const o = (dy * dw + dx) * 4;
      out[o] = roundEven(acc[dx * 3]);
      out[o + 1] = roundEven(acc[dx * 3 + 1]);
      out[o + 2] = roundEven(acc[dx * 3 + 2]);
      out[o + 3] = 255;
    }
  }
  return out;
}

// cv2.resize(INTER_LINEAR) of an RGBA picture, enlarging: 11-bit fixed-point weights, as OpenCV's
// SIMD path rounds them.
// Columns past an edge take the edge pixel's whole weight; rows keep theirs, on the edge row twice.
function linearTable(ssize, dsize, columns) {
  const scale = 1 / (dsize / ssize); // as OpenCV computes it (1 / inv_scale)
  const index = new Int32Array(dsize);
  const weight = new Int32Array(dsize * 2);
  for (let d = 0; d < dsize; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (columns && s < 0) { f = 0; s = 0; }
    if (columns && s >= ssize - 1) { f = 0; s = ssize - 1; }
    index[d] = s;
    weight[d * 2] = roundEven(Math.fround(1 - f) * 2048); // each weight rounded alone, as OpenCV does
    weight[d * 2 + 1] = roundEven(f * 2048);
  }
  return { index, weight };
}

function resizeLinear(src, sw, sh, dw, dh) {
  const xt = linearTable(sw, dw, true);
  const yt = linearTable(sh, dh, false);
  const out = new Uint8ClampedArray(dw * dh * 4);
  const rows = new Map();
  const hrow = (sy) => {
    if (rows.has(sy)) return rows.get(sy);
    const r = new Int32Array(dw * 3);
    const base = sy * sw * 4;
    for (let dx = 0; dx < dw; dx++) {
      const s = xt.index[dx];
      const s1 = Math.min(s + 1, sw - 1);
      const a0 = xt.weight[dx * 2];
      const a1 = xt.weight[dx * 2 + 1];
      for (let c = 0; c < 3; c++) r[dx * 3 + c] = src[base + s * 4 + c] * a0 + src[base + s1 * 4 + c] * a1;
    }
    rows.set(sy, r);
    if (rows.size > 4) rows.delete(rows.keys().next().value);
    return r;
  };
  for (let dy = 0; dy < dh; dy++) {
    const s = yt.index[dy];
    const r0 = hrow(Math.min(Math.max(s, 0), sh - 1));
    const r1 = hrow(Math.min(Math.max(s + 1, 0), sh - 1));
    const b0 = yt.weight[dy * 2];
    const b1 = yt.weight[dy * 2 + 1];
    for (let dx = 0; dx < dw; dx++) {
      const o = (dy * dw + dx) * 4;
      for (let c = 0; c < 3; c++) {
        const k = dx * 3 + c;
        out[o + c] = ((((r0[k] >> 4) * b0) >> 16) + (((r1[k] >> 4) * b1) >> 16) + 2) >> 2;
      }
      out[o + 3] = 255;
    }
  }
  return out;
}

// faces/resize.py resize_pixels(area=True): area to shrink, linear to enlarge.
export function resizeForDetector(src, sw, sh, dw, dh) {
  if (sw === dw && sh === dh) return src;
  return dw <= sw && dh <= sh ? resizeArea(src, sw, sh, dw, dh) : resizeLinear(src, sw, sh, dw, dh);
}

// Pillow's Image.resize(BILINEAR) of an RGB square (Resample.c): a triangle filter widened by the
// shrink factor, 22-bit fixed-point weights, horizontal pass then vertical, each rounded to 8 bits.
function pilCoefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = filterscale;
  const bounds = [];
  const weights = [];
  for (let x = 0; x < outSize; x++) {
    const centre = (x + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(centre - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(centre + support + 0.5)) - xmin;
    const k = [];
    let sum = 0;
    for (let i = 0; i < xmax; i++) {
      const w = Math.max(0, 1 - Math.abs((i + xmin - centre + 0.5) / filterscale));
      k.push(w);
      sum += w;
    }
    weights.push(k.map((w) => {
      const v = (sum !== 0 ? w / sum : w) * 4194304;
      return v < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5);
    }));
    bounds.push(xmin);
  }
  return { bounds, weights };
}

const clip8 = (ss) => (ss <= 0 ? 0 : ss >= 4194304 * 256 ? 255 : Math.floor(ss / 4194304));

export function pilResizeBilinear(src, side, size) {
  // src: RGB bytes of a side x side square
  if (side === size) return src;
  const { bounds, weights } = pilCoefficients(side, size);
  const temp = new Uint8Array(size * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < size; x++) {
      const k = weights[x];
      const x0 = bounds[x];
      for (let c = 0; c < 3; c++) {
        let ss = 2097152;
        for (let i = 0; i < k.length; i++) ss += src[(y * side + x0 + i) * 3 + c] * k[i];
        temp[(y * size + x) * 3 + c] = clip8(ss);
      }
    }
  }
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const k = weights[y];
    const y0 = bounds[y];
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let ss = 2097152;
        for (let i = 0; i < k.length; i++) ss += temp[((y0 + i) * size + x) * 3 + c] * k[i];
        out[(y * size + x) * 3 + c] = clip8(ss);
      }
    }
  }
  return out;
}

// faces/crop.py crop_face: the policy's square around the box, the fill colour outside the photo,
// resized to the classifier's input.
export function cropFace(rgba, width, height, box, policy, size) {
  const [x0, y0, x1, y1] = box;
  const sideF = policy.scale * Math.max(x1 - x0, y1 - y0);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const sx0 = pyRound(cx - sideF / 2);
  const sy0 = pyRound(cy - sideF / 2);
  const sx1r = pyRound(cx + sideF / 2);
  const side = Math.max(1, sx1r - sx0);
  const square = new Uint8Array(side * side * 3);
  for (let i = 0; i < side * side; i++) square.set(policy.fill, i * 3);
  const ix0 = Math.max(0, sx0);
  const iy0 = Math.max(0, sy0);
  const ix1 = Math.min(width, sx0 + side);
  const iy1 = Math.min(height, sy0 + side);
  for (let y = iy0; y < iy1; y++) {
    for (let x = ix0; x < ix1; x++) {
      const s = (y * width + x) * 4;
      const d = ((y - sy0) * side + (x - sx0)) * 3;
      square[d] = rgba[s];
      square[d + 1] = rgba[s + 1];
      square[d + 2] = rgba[s + 2];
    }
  }
  return pilResizeBilinear(square, side, size);
}

// retinaface.py make_priors: (cx, cy, side) per prior, stride by stride, row by row, sizes per cell.
const priorCache = new Map();
export function makePriors(height, width, det) {
  const key = `${height}x${width}`;
  if (priorCache.has(key)) return priorCache.get(key);
  const values = [];
  det.strides.forEach((stride, layer) => {
    const rows = Math.ceil(height / stride);
    const cols = Math.ceil(width / stride);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        for (const size of det.min_sizes[layer]) values.push((c + 0.5) * stride, (r + 0.5) * stride, size);
      }
    }
  });
  const priors = Float64Array.from(values);
  priorCache.clear();
  priorCache.set(key, priors);
  return priors;
}

// faces/nms.py iou_matrix, for two boxes given as arrays of 4
function iou(a, b) {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / Math.max(union, 1e-12) : 0;
}

// Stable order of indices by score, best first (numpy's argsort(-x, kind="stable")).
const byScore = (indices, scores) => indices.sort((a, b) => scores[b] - scores[a] || a - b);

// retinaface.py RetinaFaceDetector.candidates: boxes (VOC framing, clipped) and scores, best first.
export function decodeCandidates(loc, conf, padH, padW, width, height, scale, det) {
  const priors = makePriors(padH, padW, det);
  const count = priors.length / 3;
  if (conf.length !== count * 2) throw new Error(`the RetinaFace graph gave ${conf.length / 2} outputs for ${count} priors`);
  const scores = new Float64Array(count);
  let keep = [];
  for (let i = 0; i < count; i++) {
    scores[i] = conf[i * 2 + 1];
    if (Math.fround(scores[i]) >= Math.fround(det.score_threshold)) keep.push(i);
  }
  keep = byScore(keep, scores).slice(0, det.top_candidates);
  const [v0, v1] = det.variances;
  const boxes = keep.map((i) => {
    const [px, py, ps] = [priors[i * 3], priors[i * 3 + 1], priors[i * 3 + 2]];
    const cx = px + loc[i * 4] * v0 * ps;
    const cy = py + loc[i * 4 + 1] * v0 * ps;
    const w = ps * Math.exp(loc[i * 4 + 2] * v1);
    const h = ps * Math.exp(loc[i * 4 + 3] * v1);
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
  });
  // retinaface.py nms_order: greedy, a box goes when it overlaps a kept one by more than nms_iou
  const kept = [];
  let remaining = boxes.map((_, j) => j);
  while (remaining.length) {
    const seed = remaining[0];
    kept.push(seed);
    remaining = remaining.slice(1).filter((j) => iou(boxes[seed], boxes[j]) <= det.nms_iou);
  }
  const [dx, dy, sx, sy] = det.framing;
  const out = { boxes: [], scores: [] };
  for (const j of kept) {
    const b = boxes[j].map((v) => v / scale);
    const cx = (b[0] + b[2]) / 2;
    const cy = (b[1] + b[3]) / 2;
    if (!(cx >= 0 && cx < width && cy >= 0 && cy < height)) continue; // centred in the padding
    const w = b[2] - b[0];
    const h = b[3] - b[1];
    const fx = cx + dx * w;
    const fy = cy + dy * h;
    const framed = [
      Math.min(Math.max(fx - (sx * w) / 2, 0), width), Math.min(Math.max(fy - (sy * h) / 2, 0), height),
      Math.min(Math.max(fx + (sx * w) / 2, 0), width), Math.min(Math.max(fy + (sy * h) / 2, 0), height),
    ];
    if (framed[2] - framed[0] < 1 || framed[3] - framed[1] < 1) continue;
    out.boxes.push(framed);
    out.scores.push(scores[keep[j]]);
  }
  return out;
}

// verify.py: the logistic regression over verifier_inputs (second looks are 0 for RetinaFace)
function logistic(columns, weights) {
  let z = weights.intercept;
  for (let k = 0; k < columns.length; k++) z += ((columns[k] - weights.mean[k]) / weights.scale[k]) * weights.coef[k];
  return 1 / (1 + Math.exp(-Math.min(80, Math.max(-80, z))));
}

export function faceProbabilities(boxes, scores, features, featureWidth, longer, verifier) {
  return boxes.map((b, i) => {
    const side = Math.sqrt(Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]));
    const columns = [scores[i], Math.log(Math.max(side, 1)), side / longer, 0, 0,
      ...features.subarray(i * featureWidth, (i + 1) * featureWidth)];
    let face;
    const stage = verifier.first_stage;
    if (stage) {
      face = logistic(columns, stage);
      if (face >= stage.low && face <= stage.high) face = logistic(columns, verifier);
    } else {
      face = logistic(columns, verifier);
    }
    const trust = verifier.trust_score;
    return trust != null && scores[i] >= trust ? Math.max(face, scores[i]) : face; // verify.trusted
  });
}

// verify.py suppress_second_boxes: indices kept (ascending)
export function suppressSecondBoxes(boxes, scores, iouLimit, insideLimit) {
  const area = (b) => Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
  const kept = [];
  for (const i of byScore(boxes.map((_, k) => k), scores)) {
    const clash = kept.some((j) => {
      const o = iou(boxes[i], boxes[j]);
      const inter = (o * (area(boxes[i]) + area(boxes[j]))) / (1 + o);
      return o >= iouLimit || inter / Math.max(area(boxes[i]), 1e-9) >= insideLimit;
    });
    if (!clash) kept.push(i);
  }
  return kept.sort((a, b) => a - b);
}

const round = (v, digits) => Number(v.toFixed(digits));

// The pipeline: sessions made once; detect(rgba, width, height, mode) answers as /v1/detect does.
export async function createPipeline(ort, spec, fetchModel) {
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const [detectorBytes, classifierBytes] = await Promise.all(
    [fetchModel(spec.files.detector), fetchModel(spec.files.classifier)]);
  const detector = await ort.InferenceSession.create(detectorBytes, options);
  const classifier = await ort.InferenceSession.create(classifierBytes, options);
  const pre = spec.preprocessing;
  const size = pre.input_size;
  const classes = spec.classes;

  const timing = {};
  const lap = (name, since) => {
    const now = performance.now();
    timing[name] = (timing[name] || 0) + now - since;
    return now;
  };

  async function classify(rgba, width, height, boxes) {
    let t = performance.now();
    const plane = size * size;
    const batch = new Float32Array(boxes.length * 3 * plane);
    const mul = pre.std.map((s) => Math.fround(1 / (255 * s)));
    const add = pre.mean.map((m, c) => Math.fround(-m / pre.std[c]));
    boxes.forEach((box, n) => {
      const crop = cropFace(rgba, width, height, box, pre.crop_policy, size);
      for (let c = 0; c < 3; c++) {
        const base = (n * 3 + c) * plane;
        for (let p = 0; p < plane; p++) batch[base + p] = Math.fround(crop[p * 3 + c] * mul[c]) + add[c];
      }
    });
    t = lap("crop_ms", t);
    const input = new ort.Tensor("float32", batch, [boxes.length, 3, size, size]);
    const names = classifier.outputNames.includes("features") ? ["logits", "features"] : [classifier.outputNames[0]];
    const out = await classifier.run({ [classifier.inputNames[0]]: input }, names);
    const logits = out[names[0]].data;
    const features = names.length > 1 ? out.features.data : null;
    lap("classifier_ms", t);
    return { logits, features, width: features ? features.length / boxes.length : 0 };
  }

  function face(box, logits, row, detectionScore) {
    const values = Array.from(logits.subarray(row * classes.length, (row + 1) * classes.length));
    const top = Math.max(...values);
    const exp = values.map((v) => Math.exp(v - top));
    const sum = exp.reduce((a, b) => a + b, 0);
    const p = exp.map((v) => v / sum);
    const best = p.indexOf(Math.max(...p));
    return {
      box: box.map((v) => round(v, 2)), label: classes[best], score: round(p[best], 5),
      probabilities: Object.fromEntries(classes.map((c, k) => [c, round(p[k], 5)])),
      detection_score: round(detectionScore, 5),
    };
  }

  async function detect(rgba, width, height, mode = "photo") {
    const det = spec[mode];
    for (const key of Object.keys(timing)) delete timing[key];
    let t = performance.now();
    const scale = det.long_side / Math.max(width, height);
    const inW = Math.max(1, pyRound(width * scale));
    const inH = Math.max(1, pyRound(height * scale));
    const small = resizeForDetector(rgba, width, height, inW, inH);
    const pad = det.pad_multiple;
    const padH = Math.ceil(inH / pad) * pad;
    const padW = Math.ceil(inW / pad) * pad;
    const plane = padH * padW;
    const tensor = new Float32Array(3 * plane); // zeros: the mean colour, after the subtraction
    const [mb, mg, mr] = det.mean_bgr;
    for (let y = 0; y < inH; y++) {
      for (let x = 0; x < inW; x++) {
        const s = (y * inW + x) * 4;
        const d = y * padW + x;
        tensor[d] = small[s + 2] - mb;
        tensor[plane + d] = small[s + 1] - mg;
        tensor[2 * plane + d] = small[s] - mr;
      }
    }
    t = lap("resize_ms", t);
    const out = await detector.run({ input: new ort.Tensor("float32", tensor, [1, 3, padH, padW]) }, ["loc", "conf"]);
    t = lap("detector_ms", t);
    const found = decodeCandidates(out.loc.data, out.conf.data, padH, padW, width, height, scale, det);
    lap("decode_ms", t);
    let faces = [];
    if (mode === "camera") {
      faces = await live(rgba, width, height, det, found);
    } else if (det.verifier && found.boxes.length) {
      const { logits, features, width: fw } = await classify(rgba, width, height, found.boxes);
      const v = det.verifier;
      const prob = faceProbabilities(found.boxes, found.scores, features, fw, Math.max(width, height), v);
      let keep = found.boxes.map((_, i) => i).filter((i) => prob[i] >= det.face_threshold);
      const kept = suppressSecondBoxes(keep.map((i) => found.boxes[i]), keep.map((i) => prob[i]),
        v.suppress_iou, v.suppress_inside);
      keep = byScore(kept.map((k) => keep[k]), prob);
      faces = keep.map((i) => face(found.boxes[i], logits, i, prob[i]));
    } else if (found.boxes.length) {
      const keep = found.boxes.map((_, i) => i).filter((i) => found.scores[i] >= det.face_threshold);
      if (keep.length) {
        const { logits } = await classify(rgba, width, height, keep.map((i) => found.boxes[i]));
        faces = keep.map((i, row) => face(found.boxes[i], logits, row, found.scores[i]));
      }
    }
    const counts = Object.fromEntries(classes.map((c) => [c, faces.filter((f) => f.label === c).length]));
    return { width, height, faces, counts, candidates: found.boxes.length, timing: { ...timing } };
  }

  // The camera: boxes every frame, labels carried from the last frame's overlapping face (IoU >= 0.3);
  // a new face is classified at once, and every `label_refresh` frames the face with the oldest label
  // is classified again. The classifier costs far more than the detector here (tens of ms a face
  // against ~20 ms a frame), so classifying every face of every frame could not keep up with a camera.
  let previous = [];
  let frame = 0;
  let refreshed = 0;
  async function live(rgba, width, height, det, found) {
    frame += 1;
    const keep = found.boxes.map((_, i) => i).filter((i) => found.scores[i] >= det.face_threshold);
    const boxes = keep.map((i) => found.boxes[i]);
    const used = new Set();
    const carried = boxes.map((box) => {
      let best = -1;
      let most = 0.3;
      previous.forEach((p, j) => {
        const o = used.has(j) ? 0 : iou(box, p.box);
        if (o >= most) [best, most] = [j, o];
      });
      if (best < 0) return null;
      used.add(best);
      return previous[best];
    });
    const need = boxes.map((_, i) => i).filter((i) => !carried[i]);
    const stale = boxes.map((_, i) => i).filter((i) => carried[i])
      .sort((a, b) => carried[a].frame - carried[b].frame);
    if (stale.length && frame - refreshed >= det.label_refresh) {
      need.push(stale[0]);
      refreshed = frame;
    }
    const fresh = new Map();
    if (need.length) {
      const { logits } = await classify(rgba, width, height, need.map((i) => boxes[i]));
      need.forEach((i, row) => fresh.set(i, face(boxes[i], logits, row, found.scores[keep[i]])));
    }
    const faces = boxes.map((box, i) => fresh.get(i)
      || { ...carried[i].face, box: box.map((v) => round(v, 2)), detection_score: round(found.scores[keep[i]], 5) });
    previous = boxes.map((box, i) => ({ box, face: faces[i], frame: fresh.has(i) ? frame : carried[i].frame }));
    return faces;
  }

  return { detect };
}
