// The page's own reader: a drawing made MNIST-like as `digits.read.pipeline.prepare` does it, then the
// served ONNX model run in the browser by onnxruntime-web (bundled in the package: nothing from elsewhere).
//
// Contract: `prepare(grey, width, height)` takes the pad's grey levels (0 black .. 1 white) and returns
// {image: Float32Array(784), hasInk, scribbled} or null when the picture is not clean paper (then the server reads
// it). It follows the reader's path for clean pictures step by step: paper level and ink contrast
// (levels.clean_paper, ink._analyse_clean; a pad under 512 px never needs the thin-pen second look, nor the
// look at half size for bold writing), 8-connected pieces without blobs and specks (pieces.writing_pieces),
// the one digit (pick_digit, less a line drawn under it), no digit where its ink is too dense with strokes to be
// one (geometry.scribbled: a signature), pen width brought into MNIST's range (normalize._normalise_stroke), the
// 20 px box with Pillow's BOX / BILINEAR resampling and the centre of mass at (14, 14)
// (normalize.to_mnist). Then the model, calibrated by the served model's temperature (calibration.apply),
// and, where it is unsure, averaged with the image turned ±10° (read.turns), as Reader.classify does.
// `Offline.load(temperature)` gives null when the browser cannot run the model.

const MIN_CONTRAST = 0.1, CLEAN_SHARE = 0.6, CLEAN_LEVELS = 2;
const BLOB_THICKNESS = 0.75, BLOB_SIZE = 0.22, MIN_DIGIT_SHARE = 0.04;
const LEAST_PIECE = 0.03, REACH = 0.25, FAINT_INK = 0.25, SMALL_PIECE = 0.08, SMALL_REACH = 0.08;  // pick.py
const STROKE_RANGE = [0.08, 0.17], BOX = 20, SIZE = 28, COM = 14;
const REJECT = 10, THRESHOLD = 0.5;
const TURNS = [-10, 10], SETTLED = 0.99, FLOOR = 1e-12;  // read.turns, calibration.FLOOR
const FLAT_LINE = 5, UNDERLINE_GAP = 0.05, UNDERLINE_REACH = 0.1;  // pick._without_underlines
const SCRIBBLE_CROSSINGS = 9, CROSSINGS_SHARE = 0.1;  // geometry.scribbled

function roundHalfEven(x) {  // Python's round()
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function edt(ones, h, w) {
  // scipy's distance_transform_edt: each nonzero pixel's distance to the nearest zero (exact, two 1D passes).
  const INF = 1e20, f = new Float64Array(h * w);
  for (let i = 0; i < h * w; i++) f[i] = ones[i] ? INF : 0;
  const line = (get, set, n) => {
    const d = new Float64Array(n), v = new Int32Array(n), z = new Float64Array(n + 1), g = new Float64Array(n);
    for (let q = 0; q < n; q++) g[q] = get(q);
    const parabola = q => ((g[q] + q * q) - (g[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
    let k = 0; v[0] = 0; z[0] = -Infinity; z[1] = Infinity;
    for (let q = 1; q < n; q++) {
      let s = parabola(q);
      while (s <= z[k]) { k--; s = parabola(q); }
      k++; v[k] = q; z[k] = s; z[k + 1] = Infinity;
    }
    k = 0;
    for (let q = 0; q < n; q++) {
      while (z[k + 1] < q) k++;
      d[q] = (q - v[k]) * (q - v[k]) + g[v[k]];
    }
    for (let q = 0; q < n; q++) set(q, d[q]);
  };
  for (let x = 0; x < w; x++) line(y => f[y * w + x], (y, value) => { f[y * w + x] = value; }, h);
  for (let y = 0; y < h; y++) line(x => f[y * w + x], (x, value) => { f[y * w + x] = value; }, w);
  const out = new Float64Array(h * w);
  for (let i = 0; i < h * w; i++) out[i] = f[i] >= INF ? Infinity : Math.sqrt(f[i]);
  return out;
}

function bbox(mask, h, w) {  // [x0, y0, x1, y1], exclusive ends; null when empty
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) {
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
}

function crop(mask, w, [x0, y0, x1, y1]) {
  const out = new Uint8Array((x1 - x0) * (y1 - y0));
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) out[(y - y0) * (x1 - x0) + x - x0] = mask[y * w + x];
  return out;
}

function components(mask, h, w) {
  // pieces.writing_pieces: labels in scan order, then blobs (as thick as long) and specks dropped.
  const labels = new Int32Array(h * w), areas = [0], boxes = [null];
  const stack = [];
  for (let start = 0; start < h * w; start++) {
    if (!mask[start] || labels[start]) continue;
    const label = areas.length;
    let area = 0, x0 = w, y0 = h, x1 = 0, y1 = 0;
    labels[start] = label; stack.push(start);
    while (stack.length) {
      const i = stack.pop(), y = Math.floor(i / w), x = i % w;
      area++; x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + 1); y1 = Math.max(y1, y + 1);
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy, xx = x + dx, j = yy * w + xx;
        if (yy >= 0 && yy < h && xx >= 0 && xx < w && mask[j] && !labels[j]) { labels[j] = label; stack.push(j); }
      }
    }
    areas.push(area); boxes.push([x0, y0, x1, y1]);
  }
  const shortest = Math.min(h, w), dropped = areas.map(() => false);
  for (let label = 1; label < areas.length; label++) {
    const [x0, y0, x1, y1] = boxes[label], extent = Math.max(x1 - x0, y1 - y0);
    if (extent < 0.1 * shortest) continue;
    const own = crop(labels.map(v => (v === label ? 1 : 0)), w, boxes[label]);
    const thickness = 2 * edt(own, y1 - y0, x1 - x0).reduce((a, b) => Math.max(a, b), 0);
    const atBorder = y0 === 0 || x0 === 0 || y1 === h || x1 === w;
    dropped[label] = thickness >= BLOB_THICKNESS * extent || (atBorder && thickness >= BLOB_SIZE * shortest);
  }
  const kept = areas.filter((_, i) => !dropped[i]);
  if (kept.some(a => a > 0)) {
    const minArea = Math.max(Math.max(...kept) * 0.01, (shortest / 300) ** 2 * 4);
    areas.forEach((a, i) => { if (a < minArea) dropped[i] = true; });
  }
  dropped[0] = false;
  for (let i = 0; i < h * w; i++) if (dropped[labels[i]]) labels[i] = 0;
  return { labels, areas: areas.map((a, i) => (dropped[i] ? 0 : a)), boxes };
}

function pickDigit({ labels, areas, boxes }, h, w, contrast) {
  // pick.pick_digit: the largest piece, plus substantial pieces near it (small ones only nearer where ink is faint).
  let live = areas.map((a, i) => i).filter(i => i > 0 && areas[i] > 0);
  const digit = new Uint8Array(h * w);
  if (!live.length) return digit;
  const touches = i => boxes[i][0] === 0 || boxes[i][1] === 0 || boxes[i][2] === w || boxes[i][3] === h;
  const inner = live.filter(i => !touches(i));
  const most = list => Math.max(...list.map(i => areas[i]));
  if (inner.length && most(inner) >= 0.1 * most(live)) live = inner;
  live.sort((a, b) => areas[b] - areas[a]);
  const chosen = [live[0]];
  let box = boxes[live[0]].slice(), changed = true;
  while (changed) {
    changed = false;
    for (const i of live) {
      if (chosen.includes(i) || areas[i] < LEAST_PIECE * areas[live[0]]) continue;
      const size = Math.max(box[2] - box[0], box[3] - box[1]), b = boxes[i];
      const dx = Math.max(0, Math.max(box[0], b[0]) - Math.min(box[2], b[2]));
      const dy = Math.max(0, Math.max(box[1], b[1]) - Math.min(box[3], b[3]));
      const small = contrast < FAINT_INK && areas[i] < SMALL_PIECE * areas[live[0]];
      const reach = small ? SMALL_REACH : REACH;
      if (Math.hypot(dx, dy) <= reach * size) {
        chosen.push(i);
        box = [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]), Math.max(box[3], b[3])];
        changed = true;
      }
    }
  }
  const kept = withoutUnderlines(chosen, boxes);
  box = [0, 1, 2, 3].map(k => (k < 2 ? Math.min : Math.max)(...kept.map(i => boxes[i][k])));
  if (Math.max(box[2] - box[0], box[3] - box[1]) < MIN_DIGIT_SHARE * Math.min(h, w)) return digit;
  for (let i = 0; i < h * w; i++) digit[i] = kept.includes(labels[i]) ? 1 : 0;
  return digit;
}

function withoutUnderlines(chosen, boxes) {
  // pick._without_underlines: less the pen lines drawn under the digit's other pieces, clear of them, past them.
  const flat = chosen.filter(i => boxes[i][2] - boxes[i][0] >= FLAT_LINE * (boxes[i][3] - boxes[i][1]));
  if (!flat.length || flat.length === chosen.length) return chosen;
  const rest = chosen.filter(i => !flat.includes(i)).map(i => boxes[i]);
  const [x0, top] = [0, 1].map(k => Math.min(...rest.map(b => b[k])));
  const [x1, bottom] = [2, 3].map(k => Math.max(...rest.map(b => b[k])));
  const reach = UNDERLINE_REACH * (x1 - x0), below = bottom + UNDERLINE_GAP * (bottom - top);
  const underline = b => b[1] >= below && b[0] <= x0 - reach && b[2] >= x1 + reach;
  return chosen.filter(i => !flat.includes(i) || !underline(boxes[i]));
}

function scribbled(mask, h, w) {
  // geometry.scribbled: one in ten of the rows with ink, or of the columns, cross SCRIBBLE_CROSSINGS strokes or more.
  const dense = (lines, length, at) => {
    let inked = 0, many = 0;
    for (let a = 0; a < lines; a++) {
      let crossed = 0;
      for (let b = 0; b < length; b++) if (at(a, b) && (b === 0 || !at(a, b - 1))) crossed++;
      if (crossed) inked++;
      if (crossed >= SCRIBBLE_CROSSINGS) many++;
    }
    return inked > 0 && many >= CROSSINGS_SHARE * inked;
  };
  return dense(h, w, (y, x) => mask[y * w + x]) || dense(w, h, (x, y) => mask[y * w + x]);
}

function median(values) {
  const sorted = Float64Array.from(values).sort(), n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

function strokeWidth(mask, h, w) {  // normalize.stroke_width: twice the distance-to-edge on the medial ridge
  const distance = edt(mask, h, w), ridge = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = y * w + x;
    if (!mask[i]) continue;
    let most = -Infinity;  // scipy's maximum_filter(size 3), whose 'reflect' border repeats the edge
    for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1); yy++)
      for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++) most = Math.max(most, distance[yy * w + xx]);
    if (distance[i] >= most) ridge.push(distance[i]);
  }
  return ridge.length ? 2 * median(ridge) : 0;
}

function normaliseStroke(mask, h, w) {  // normalize._normalise_stroke -> [mask, h, w]
  const box = bbox(mask, h, w);
  if (!box) return [mask, h, w];
  mask = crop(mask, w, box); w = box[2] - box[0]; h = box[3] - box[1];
  const size = Math.max(h, w), width = strokeWidth(mask, h, w);
  const low = STROKE_RANGE[0] * size, high = STROKE_RANGE[1] * size;
  if (width < low) {
    const radius = (low - width) / 2, pad = Math.ceil(radius) + 1, pw = w + 2 * pad, ph = h + 2 * pad;
    const paper = new Uint8Array(ph * pw).fill(1);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) paper[(y + pad) * pw + x + pad] = 0;
    return [edt(paper, ph, pw).map(d => (d <= radius ? 1 : 0)), ph, pw];
  }
  if (width > high) {
    const radius = (width - high) / 2, thinner = edt(mask, h, w).map(d => (d > radius ? 1 : 0));
    const sum = a => a.reduce((s, v) => s + v, 0);
    return [sum(thinner) > 0.3 * sum(mask) ? thinner : mask, h, w];
  }
  return [mask, h, w];
}

function resample(pixels, inW, inH, outW, outH, box) {
  // Pillow's resize of an "F" image (Resample.c): horizontal pass, then vertical, double weights.
  const support0 = box ? 0.5 : 1.0;
  const filter = box ? (x => (x > -0.5 && x <= 0.5 ? 1 : 0)) : (x => { x = Math.abs(x); return x < 1 ? 1 - x : 0; });
  const coefficients = (inSize, outSize) => {
    const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = support0 * filterscale;
    return Array.from({ length: outSize }, (_, xx) => {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      const weights = Array.from({ length: xmax }, (_, x) => filter((x + xmin - center + 0.5) / filterscale));
      const total = weights.reduce((s, v) => s + v, 0);
      return { xmin, weights: total ? weights.map(v => v / total) : weights };
    });
  };
  let image = pixels, width = inW;
  if (outW !== inW) {
    const cs = coefficients(inW, outW), out = new Float32Array(outW * inH);
    for (let y = 0; y < inH; y++) cs.forEach(({ xmin, weights }, xx) => {
      let s = 0;
      weights.forEach((k, x) => { s += image[y * width + xmin + x] * k; });
      out[y * outW + xx] = s;
    });
    image = out; width = outW;
  }
  if (outH !== inH) {
    const cs = coefficients(inH, outH), out = new Float32Array(width * outH);
    cs.forEach(({ xmin, weights }, yy) => {
      for (let x = 0; x < width; x++) {
        let s = 0;
        weights.forEach((k, y) => { s += image[(xmin + y) * width + x] * k; });
        out[yy * width + x] = s;
      }
    });
    image = out;
  }
  return image;
}

function pairwiseSum(values, round, Type = Float32Array) {
  // numpy's pairwise_sum (loops_utils.h), rounding each addition with `round` (Math.fround: float32).
  values = Type.from(values);
  const sum = (start, n) => {
    if (n < 8) {
      let res = 0;
      for (let i = 0; i < n; i++) res = round(res + values[start + i]);
      return res;
    }
    if (n <= 128) {
      const r = Array.from(values.slice(start, start + 8));
      let i = 8;
      for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = round(r[j] + values[start + i + j]);
      let res = round(round(round(r[0] + r[1]) + round(r[2] + r[3])) + round(round(r[4] + r[5]) + round(r[6] + r[7])));
      for (; i < n; i++) res = round(res + values[start + i]);
      return res;
    }
    let n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return round(sum(start, n2) + sum(start + n2, n - n2));
  };
  return round(0 + sum(0, values.length));
}

function toMnist(mask, h, w) {  // normalize.to_mnist: crop, fit 20×20, centre by mass in 28×28
  const image = new Float32Array(SIZE * SIZE);
  [mask, h, w] = normaliseStroke(mask, h, w);
  const box = bbox(mask, h, w);
  if (!box) return image;
  const crops = Float32Array.from(crop(mask, w, box)), width = box[2] - box[0], height = box[3] - box[1];
  const factor = BOX / Math.max(height, width);
  const sw = Math.max(1, roundHalfEven(width * factor)), sh = Math.max(1, roundHalfEven(height * factor));
  const small = resample(crops, width, height, sw, sh, factor < 1).map(v => Math.min(1, Math.max(0, v)));
  // scipy's center_of_mass, with numpy's sums: the mass in float32, the moments in float64. Their
  // rounding decides a tie (a mass centre at x.5), so it is numpy's pairwise summation, exactly.
  const total = pairwiseSum(small, Math.fround);
  const rows = pairwiseSum(small.map((v, i) => v * Math.floor(i / sw)), v => v, Float64Array);
  const cols = pairwiseSum(small.map((v, i) => v * (i % sw)), v => v, Float64Array);
  const clip = (v, hi) => Math.min(Math.max(v, 0), hi);
  const top = clip(roundHalfEven(COM - rows / total), SIZE - sh), left = clip(roundHalfEven(COM - cols / total), SIZE - sw);
  for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) image[(top + y) * SIZE + left + x] = small[y * sw + x];
  return image;
}

function inkLevel(sorted) {  // levels.ink_level: numpy's 90th percentile, linear, of sorted values; 0 when none
  if (!sorted.length) return 0;
  const at = 0.9 * (sorted.length - 1), low = Math.floor(at);
  return sorted[low] + (at - low) * (sorted[Math.min(low + 1, sorted.length - 1)] - sorted[low]);
}

export function prepare(grey, width, height) {
  const n = width * height, levels = new Int32Array(256);
  for (let i = 0; i < n; i++) levels[Math.min(255, Math.max(0, roundHalfEven(grey[i] * 255)))]++;
  const mode = levels.indexOf(Math.max(...levels));
  let share = 0;
  for (let l = Math.max(0, mode - CLEAN_LEVELS); l <= Math.min(255, mode + CLEAN_LEVELS); l++) share += levels[l];
  if (share / n < CLEAN_SHARE) return null;  // not clean paper: the server's fuller analysis reads it
  const paper = Math.fround(mode / 255), darkInk = paper >= 0.5;
  const signal = Float32Array.from(grey, g => (darkInk ? paper - g : g - paper));
  const inked = signal.filter(v => v > MIN_CONTRAST / 2).sort();
  let contrast = inkLevel(inked);
  // ink._analyse_clean: a pale note round the writing set the ink's level under what ink can be; ink stands out beyond it.
  const strong = inked.filter(v => v >= 2 * MIN_CONTRAST);
  if (contrast < MIN_CONTRAST && strong.length) contrast = inkLevel(strong);
  const mask = new Uint8Array(n);
  if (contrast >= MIN_CONTRAST) for (let i = 0; i < n; i++) mask[i] = signal[i] > Math.fround(0.5 * contrast) ? 1 : 0;
  const digit = pickDigit(components(mask, height, width), height, width, contrast);
  const hasInk = digit.some(v => v);
  const image = hasInk ? toMnist(digit, height, width) : new Float32Array(SIZE * SIZE);
  return { image, hasInk, scribbled: hasInk && scribbled(digit, height, width) };
}

export function turn(image, degrees) {
  // turns._turned: scipy.ndimage.rotate(image, degrees, reshape=False, order=1), bilinear, zero outside.
  const a = degrees * Math.PI / 180, cos = Math.cos(a), sin = Math.sin(a), c = (SIZE - 1) / 2;
  const out = new Float32Array(SIZE * SIZE);
  for (let r = 0; r < SIZE; r++) {
    for (let q = 0; q < SIZE; q++) {
      const y = r - c, x = q - c;
      const sy = cos * y + sin * x + c, sx = -sin * y + cos * x + c;
      if (sy < 0 || sy > SIZE - 1 || sx < 0 || sx > SIZE - 1) continue;  // scipy's mode "constant": 0 beyond the edge pixels' centres
      const y0 = Math.floor(sy), x0 = Math.floor(sx), fy = sy - y0, fx = sx - x0;
      let v = 0;
      for (const [dy, wy] of [[0, 1 - fy], [1, fy]]) {
        for (const [dx, wx] of [[0, 1 - fx], [1, fx]]) {
          const yy = y0 + dy, xx = x0 + dx;
          if (yy >= 0 && yy < SIZE && xx >= 0 && xx < SIZE) v += wy * wx * image[yy * SIZE + xx];
        }
      }
      out[r * SIZE + q] = v;
    }
  }
  return out;
}

function calibrated(row, temperature) {  // calibration.apply: softmax(log p / T)
  if (temperature === 1) return row;
  const logits = row.map(v => Math.log(Math.max(v, FLOOR)) / temperature);
  const top = Math.max(...logits);
  const e = logits.map(l => Math.exp(l - top));
  const total = e.reduce((s, v) => s + v, 0);
  return e.map(v => v / total);
}

export function decide(probabilities) {
  // Reader.decide: the answer the server gives, from one row of probabilities.
  const digits = Array.from(probabilities.slice(0, 10));
  const order = digits.map((p, d) => d).sort((a, b) => digits[b] - digits[a]).slice(0, 3);
  const round4 = v => Math.round(v * 1e4) / 1e4;
  const top3 = order.map(d => ({ digit: d, confidence: round4(digits[d]) }));
  if (probabilities.length > REJECT && probabilities[REJECT] > digits[order[0]]) {
    return { digit: null, confidence: round4(probabilities[REJECT]), top3, status: "no digit found" };
  }
  return { digit: order[0], confidence: top3[0].confidence, top3, status: digits[order[0]] >= THRESHOLD ? "ok" : "unsure" };
}

export class Offline {
  static async load(temperature = 1) {
    if (!(Number.isFinite(temperature) && temperature > 0)) temperature = 1;  // calibration.check: finite, above 0
    try {
      const ort = await import("./ort/ort.wasm.bundle.min.mjs");
      ort.env.wasm.numThreads = 1;  // no cross-origin isolation needed
      const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
      return new Offline(ort, session, temperature);
    } catch (err) {
      console.warn("the model cannot run in this browser; the server reads the drawings", err);
      return null;
    }
  }

  constructor(ort, session, temperature) {
    this.ort = ort;
    this.session = session;
    this.temperature = temperature;
  }

  async classify(images) {
    // Recognizer.predict_proba: one calibrated row of probabilities per 28×28 image.
    const input = new Float32Array(images.length * SIZE * SIZE);
    images.forEach((image, i) => input.set(image, i * SIZE * SIZE));
    const output = await this.session.run({ [this.session.inputNames[0]]: new this.ort.Tensor("float32", input, [images.length, SIZE, SIZE]) });
    const flat = Array.from(output[this.session.outputNames[0]].data), classes = flat.length / images.length;
    return images.map((_, i) => calibrated(flat.slice(i * classes, (i + 1) * classes), this.temperature));
  }

  async read(grey, width, height) {
    // The server's /predict?explain=1 answer for a drawing, or null when the server should read it.
    const prepared = prepare(grey, width, height);
    if (!prepared) return null;
    const rows = [];
    for (let y = 0; y < SIZE; y++) rows.push(Array.from(prepared.image.slice(y * SIZE, (y + 1) * SIZE), v => Math.round(v * 255)));
    if (!prepared.hasInk || prepared.scribbled) return { digit: null, confidence: 0, top3: [], status: "no digit found", model_input: rows };
    return { ...decide(await this.probabilities(prepared.image)), model_input: rows };
  }

  async probabilities(image) {
    // Reader.classify (turns.averaged) for one 28×28 image: turned ±10° too when the model is unsure.
    const [own] = await this.classify([image]);
    if (Math.max(...own) >= SETTLED) return own;
    const turned = await this.classify(TURNS.map(degrees => turn(image, degrees)));
    return own.map((p, k) => (p + turned.reduce((s, row) => s + row[k], 0)) / (1 + TURNS.length));
  }
}
