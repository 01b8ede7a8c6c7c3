// cellstream's SIMD128 step kernel, in AssemblyScript (`npm run build:wasm`).
//
// The JS side (src/model/kernels/wasm/) owns the memory map: it packs each layer's weights
// gate-interleaved for 4 hidden units at a time, writes one descriptor per layer and head layer,
// and copies the batch's states and inputs in before `run` and back out after it. Every pointer
// here is a byte offset into linear memory.
//
// Why this shape: one group of 4 units' i, f, g, o pre-activations fill exactly 4 SIMD registers,
// so the cell update runs on the accumulators without a round trip through memory, and a tile of
// 2 keys × 4 gate vectors (8 accumulators + 4 weights + 2 broadcasts) fits the 16 xmm registers
// V8 allocates on x64, with each weight load reused for both keys.

// Layer descriptor fields (i32 words), mirrored in src/model/kernels/wasm/plan.ts.
const D_KIND = 0;
const D_I = 4;
const D_H = 8;
const D_G = 12;
const D_X = 16;
const D_XSTRIDE = 20;
const D_HOFF = 24;
const D_COFF = 28;
const D_W = 32;
const D_B = 36;
const D_P = 40;
const D_FLAGS = 44;
const D_CLIP = 48;
const D_ACT = 52; // 3 × (code, alpha, beta)
const D_SCRATCH = 88;

// Head descriptor fields.
const E_K = 0;
const E_O = 4;
const E_G = 8;
const E_W = 12;
const E_B = 16;
const E_ACT = 20; // code, alpha, beta
const E_IN = 32;
const E_INSTRIDE = 36;
const E_OUT = 40;
const E_OUTSTRIDE = 44;

// Plan header fields.
const P_NLAYERS = 0;
const P_LAYERS = 4;
const P_NHEAD = 8;
const P_HEAD = 12;
const P_STATES = 16;
const P_STRIDE = 20;
const P_XH = 24;
const P_NCOPY = 28;
const P_COPIES = 32;
const P_CONCAT = 36;
const P_CONCATSTRIDE = 40;
const P_RESULT = 44;
const P_RESULTSTRIDE = 48;
const P_OUT = 52;
const P_O = 56;

const LAYER_BYTES = 96;
const HEAD_BYTES = 48;

const A_SIGMOID = 0;
const A_TANH = 1;
const A_RELU = 2;
const A_LINEAR = 3;
const A_HARD_SIGMOID = 4;
const A_AFFINE = 5;
const A_LEAKY_RELU = 6;
const A_THRESHOLDED_RELU = 7;
const A_SCALED_TANH = 8;
const A_ELU = 9;
const A_SOFTSIGN = 10;
const A_SOFTMAX = 11;

export function heapBase(): usize {
  return __heap_base;
}

// exp on 4 lanes: Cody–Waite reduction by ln 2 and a degree-7 Taylor polynomial on |r| ≤ ln2/2
// (truncation < 1e-8 relative), so sigmoid and tanh built on it stay within a few float32 ulps.
// @ts-ignore: decorator
@inline
function vexp(x: v128): v128 {
  x = f32x4.max(x, f32x4.splat(-87.3));
  x = f32x4.min(x, f32x4.splat(88.3));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, scale);
}

// Both built on exp(−|x|) ≤ 1, so nothing overflows and no branch depends on the data.
// @ts-ignore: decorator
@inline
function vsigmoid(x: v128): v128 {
  const e = vexp(f32x4.neg(f32x4.abs(x)));
  const pos = f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), e));
  return v128.bitselect(pos, f32x4.mul(e, pos), f32x4.ge(x, f32x4.splat(0.0)));
}

// @ts-ignore: decorator
@inline
function vtanh(x: v128): v128 {
  const e = vexp(f32x4.mul(f32x4.abs(x), f32x4.splat(-2.0)));
  const t = f32x4.div(f32x4.sub(f32x4.splat(1.0), e), f32x4.add(f32x4.splat(1.0), e));
  return v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
}

// @ts-ignore: decorator
@inline
function act(code: i32, x: v128, a: f32, b: f32): v128 {
  switch (code) {
    case A_SIGMOID:
      return vsigmoid(x);
    case A_TANH:
      return vtanh(x);
    case A_RELU:
      return f32x4.max(x, f32x4.splat(0.0));
    case A_HARD_SIGMOID:
      return f32x4.min(
        f32x4.max(f32x4.add(f32x4.mul(x, f32x4.splat(a)), f32x4.splat(b)), f32x4.splat(0.0)),
        f32x4.splat(1.0),
      );
    case A_AFFINE:
      return f32x4.add(f32x4.mul(x, f32x4.splat(a)), f32x4.splat(b));
    case A_LEAKY_RELU:
      return v128.bitselect(x, f32x4.mul(x, f32x4.splat(a)), f32x4.ge(x, f32x4.splat(0.0)));
    case A_THRESHOLDED_RELU:
      return v128.and(x, f32x4.gt(x, f32x4.splat(a)));
    case A_SCALED_TANH:
      return f32x4.mul(f32x4.splat(a), vtanh(f32x4.mul(x, f32x4.splat(b))));
    case A_ELU:
      return v128.bitselect(
        x,
        f32x4.mul(f32x4.splat(a), f32x4.sub(vexp(x), f32x4.splat(1.0))),
        f32x4.ge(x, f32x4.splat(0.0)),
      );
    case A_SOFTSIGN:
      return f32x4.div(x, f32x4.add(f32x4.splat(1.0), f32x4.abs(x)));
    default:
      return x; // A_LINEAR
  }
}

// @ts-ignore: decorator
@inline
function actAt(d: usize, slot: i32, x: v128): v128 {
  const at = d + D_ACT + <usize>slot * 12;
  return act(load<i32>(at), x, load<f32>(at, 4), load<f32>(at, 8));
}

// @ts-ignore: decorator
@inline
function bound(x: v128, clip: v128): v128 {
  return f32x4.max(f32x4.min(x, clip), f32x4.neg(clip));
}

// Stores the first `count` lanes: the last group of a layer whose H is not a multiple of 4 must
// not spill into the neighbouring state values.
// @ts-ignore: decorator
@inline
function storeLanes(p: usize, v: v128, count: i32): void {
  if (count >= 4) {
    v128.store(p, v);
    return;
  }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (count > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (count > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** Copies each key's x and h_{t−1} into one contiguous row of K = I + H floats. */
function gatherXh(d: usize, n: i32, xh: usize, states: usize, stride: i32): void {
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const x = <usize>load<i32>(d, D_X);
  const xStride = load<i32>(d, D_XSTRIDE);
  const hOff = load<i32>(d, D_HOFF);
  const rowBytes = <usize>(I + H) << 2;
  for (let b = 0; b < n; b++) {
    const row = xh + <usize>b * rowBytes;
    memory.copy(row, x + <usize>(b * xStride), <usize>I << 2);
    memory.copy(row + (<usize>I << 2), states + <usize>(b * stride + hOff), <usize>H << 2);
  }
}

// @ts-ignore: decorator
@inline
function lstmFinish(
  d: usize,
  ai: v128,
  af: v128,
  ag: v128,
  ao: v128,
  peep: usize,
  clip: v128,
  coupled: bool,
  cp: usize,
  hp: usize,
  count: i32,
): void {
  const cPrev = v128.load(cp);
  const it = actAt(d, 0, bound(f32x4.add(ai, f32x4.mul(v128.load(peep), cPrev)), clip));
  let ft: v128;
  if (coupled) {
    ft = f32x4.sub(f32x4.splat(1.0), it);
  } else {
    ft = actAt(d, 0, bound(f32x4.add(af, f32x4.mul(v128.load(peep, 16), cPrev)), clip));
  }
  const gt = actAt(d, 1, bound(ag, clip));
  const ct = f32x4.add(f32x4.mul(ft, cPrev), f32x4.mul(it, gt));
  const ot = actAt(d, 0, bound(f32x4.add(ao, f32x4.mul(v128.load(peep, 32), ct)), clip));
  storeLanes(cp, ct, count);
  storeLanes(hp, f32x4.mul(ot, actAt(d, 2, ct)), count);
}

function lstmLayer(d: usize, n: i32, xh: usize, states: usize, stride: i32): void {
  gatherXh(d, n, xh, states, stride);
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const G = load<i32>(d, D_G);
  const K = I + H;
  const hOff = load<i32>(d, D_HOFF);
  const cOff = load<i32>(d, D_COFF);
  const w = <usize>load<i32>(d, D_W);
  const bias = <usize>load<i32>(d, D_B);
  const peeps = <usize>load<i32>(d, D_P);
  const coupled = load<i32>(d, D_FLAGS) != 0;
  const clip = f32x4.splat(load<f32>(d, D_CLIP));
  const rowBytes = <usize>K << 2;
  const blockBytes = <usize>K << 6;
  for (let g = 0; g < G; g++) {
    const wg = w + <usize>g * blockBytes;
    const bg = bias + (<usize>g << 6);
    const peep = peeps + <usize>g * 48;
    const count = min(4, H - (g << 2));
    const unitBytes = <usize>(g << 4);
    const bi = v128.load(bg);
    const bf = v128.load(bg, 16);
    const bc = v128.load(bg, 32);
    const bo = v128.load(bg, 48);
    let b = 0;
    for (; b + 1 < n; b += 2) {
      let i0 = bi;
      let f0 = bf;
      let c0 = bc;
      let o0 = bo;
      let i1 = bi;
      let f1 = bf;
      let c1 = bc;
      let o1 = bo;
      let p0 = xh + <usize>b * rowBytes;
      let p1 = p0 + rowBytes;
      let wp = wg;
      for (let k = 0; k < K; k++) {
        const wi = v128.load(wp);
        const wf = v128.load(wp, 16);
        const wc = v128.load(wp, 32);
        const wo = v128.load(wp, 48);
        const s0 = v128.load32_splat(p0);
        const s1 = v128.load32_splat(p1);
        i0 = f32x4.add(i0, f32x4.mul(wi, s0));
        f0 = f32x4.add(f0, f32x4.mul(wf, s0));
        c0 = f32x4.add(c0, f32x4.mul(wc, s0));
        o0 = f32x4.add(o0, f32x4.mul(wo, s0));
        i1 = f32x4.add(i1, f32x4.mul(wi, s1));
        f1 = f32x4.add(f1, f32x4.mul(wf, s1));
        c1 = f32x4.add(c1, f32x4.mul(wc, s1));
        o1 = f32x4.add(o1, f32x4.mul(wo, s1));
        wp += 64;
        p0 += 4;
        p1 += 4;
      }
      const s0 = states + <usize>(b * stride);
      const s1 = s0 + <usize>stride;
      lstmFinish(d, i0, f0, c0, o0, peep, clip, coupled, s0 + <usize>cOff + unitBytes, s0 + <usize>hOff + unitBytes, count);
      lstmFinish(d, i1, f1, c1, o1, peep, clip, coupled, s1 + <usize>cOff + unitBytes, s1 + <usize>hOff + unitBytes, count);
    }
    if (b < n) {
      let i0 = bi;
      let f0 = bf;
      let c0 = bc;
      let o0 = bo;
      let p0 = xh + <usize>b * rowBytes;
      let wp = wg;
      for (let k = 0; k < K; k++) {
        const s0 = v128.load32_splat(p0);
        i0 = f32x4.add(i0, f32x4.mul(v128.load(wp), s0));
        f0 = f32x4.add(f0, f32x4.mul(v128.load(wp, 16), s0));
        c0 = f32x4.add(c0, f32x4.mul(v128.load(wp, 32), s0));
        o0 = f32x4.add(o0, f32x4.mul(v128.load(wp, 48), s0));
        wp += 64;
        p0 += 4;
      }
      const s0 = states + <usize>(b * stride);
      lstmFinish(d, i0, f0, c0, o0, peep, clip, coupled, s0 + <usize>cOff + unitBytes, s0 + <usize>hOff + unitBytes, count);
    }
  }
}

// GRU weights per group of 4 units: K rows of 12 floats (z, r, n). Rows < I hold W, rows ≥ I
// hold R; the candidate's input and recurrent products are kept apart (nx, nh) because the
// reset gate multiplies only the recurrent one.
// @ts-ignore: decorator
@inline
function gruFinish(
  d: usize,
  az: v128,
  ar: v128,
  nx: v128,
  nh: v128,
  clip: v128,
  hPrev: usize,
  hp: usize,
  count: i32,
): void {
  const z = actAt(d, 0, bound(az, clip));
  const r = actAt(d, 0, bound(ar, clip));
  const cand = actAt(d, 1, bound(f32x4.add(nx, f32x4.mul(r, nh)), clip));
  const h = v128.load(hPrev);
  // (1 − z)·cand + z·h, written as the reference does.
  storeLanes(hp, f32x4.add(f32x4.mul(f32x4.sub(f32x4.splat(1.0), z), cand), f32x4.mul(z, h)), count);
}

/** linearBeforeReset = true: one pass, r applied to R_n·h + bR_n. */
function gruLayerAfter(d: usize, n: i32, xh: usize, states: usize, stride: i32): void {
  gatherXh(d, n, xh, states, stride);
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const G = load<i32>(d, D_G);
  const K = I + H;
  const hOff = load<i32>(d, D_HOFF);
  const w = <usize>load<i32>(d, D_W);
  const bias = <usize>load<i32>(d, D_B);
  const clip = f32x4.splat(load<f32>(d, D_CLIP));
  const rowBytes = <usize>K << 2;
  const blockBytes = <usize>K * 48;
  const xBytes = <usize>I * 48;
  for (let g = 0; g < G; g++) {
    const wg = w + <usize>g * blockBytes;
    const bg = bias + (<usize>g << 6);
    const count = min(4, H - (g << 2));
    const unitBytes = <usize>(g << 4);
    const bz = v128.load(bg);
    const br = v128.load(bg, 16);
    const bx = v128.load(bg, 32);
    const bh = v128.load(bg, 48);
    let b = 0;
    for (; b + 1 < n; b += 2) {
      let z0 = bz;
      let r0 = br;
      let x0 = bx;
      let h0 = bh;
      let z1 = bz;
      let r1 = br;
      let x1 = bx;
      let h1 = bh;
      let p0 = xh + <usize>b * rowBytes;
      let p1 = p0 + rowBytes;
      let wp = wg;
      const xEnd = wg + xBytes;
      for (; wp < xEnd; wp += 48) {
        const wz = v128.load(wp);
        const wr = v128.load(wp, 16);
        const wn = v128.load(wp, 32);
        const s0 = v128.load32_splat(p0);
        const s1 = v128.load32_splat(p1);
        z0 = f32x4.add(z0, f32x4.mul(wz, s0));
        r0 = f32x4.add(r0, f32x4.mul(wr, s0));
        x0 = f32x4.add(x0, f32x4.mul(wn, s0));
        z1 = f32x4.add(z1, f32x4.mul(wz, s1));
        r1 = f32x4.add(r1, f32x4.mul(wr, s1));
        x1 = f32x4.add(x1, f32x4.mul(wn, s1));
        p0 += 4;
        p1 += 4;
      }
      const end = wg + blockBytes;
      for (; wp < end; wp += 48) {
        const wz = v128.load(wp);
        const wr = v128.load(wp, 16);
        const wn = v128.load(wp, 32);
        const s0 = v128.load32_splat(p0);
        const s1 = v128.load32_splat(p1);
        z0 = f32x4.add(z0, f32x4.mul(wz, s0));
        r0 = f32x4.add(r0, f32x4.mul(wr, s0));
        h0 = f32x4.add(h0, f32x4.mul(wn, s0));
        z1 = f32x4.add(z1, f32x4.mul(wz, s1));
        r1 = f32x4.add(r1, f32x4.mul(wr, s1));
        h1 = f32x4.add(h1, f32x4.mul(wn, s1));
        p0 += 4;
        p1 += 4;
      }
      const row0 = xh + <usize>b * rowBytes + (<usize>I << 2) + unitBytes;
      const s0 = states + <usize>(b * stride + hOff) + unitBytes;
      gruFinish(d, z0, r0, x0, h0, clip, row0, s0, count);
      gruFinish(d, z1, r1, x1, h1, clip, row0 + rowBytes, s0 + <usize>stride, count);
    }
    if (b < n) {
      let z0 = bz;
      let r0 = br;
      let x0 = bx;
      let h0 = bh;
      let p0 = xh + <usize>b * rowBytes;
      let wp = wg;
      const xEnd = wg + xBytes;
      for (; wp < xEnd; wp += 48) {
        const s0 = v128.load32_splat(p0);
        z0 = f32x4.add(z0, f32x4.mul(v128.load(wp), s0));
        r0 = f32x4.add(r0, f32x4.mul(v128.load(wp, 16), s0));
        x0 = f32x4.add(x0, f32x4.mul(v128.load(wp, 32), s0));
        p0 += 4;
      }
      const end = wg + blockBytes;
      for (; wp < end; wp += 48) {
        const s0 = v128.load32_splat(p0);
        z0 = f32x4.add(z0, f32x4.mul(v128.load(wp), s0));
        r0 = f32x4.add(r0, f32x4.mul(v128.load(wp, 16), s0));
        h0 = f32x4.add(h0, f32x4.mul(v128.load(wp, 32), s0));
        p0 += 4;
      }
      const row0 = xh + <usize>b * rowBytes + (<usize>I << 2) + unitBytes;
      gruFinish(d, z0, r0, x0, h0, clip, row0, states + <usize>(b * stride + hOff) + unitBytes, count);
    }
  }
}

/**
 * linearBeforeReset = false: the candidate's recurrent product reads r ⊙ h_{t−1}, so every unit's
 * r must exist first. Pass 1 keeps z (activated) and the candidate's input part per key and
 * group in scratch and writes r ⊙ h over the h part of each xh row (h_{t−1} is kept in scratch
 * for the final blend); pass 2 forms R_n·(r ⊙ h) and the new h. One key at a time: this variant
 * is rare (Keras reset_after=False) and stays simple.
 */
function gruLayerBefore(d: usize, n: i32, xh: usize, states: usize, stride: i32): void {
  gatherXh(d, n, xh, states, stride);
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const G = load<i32>(d, D_G);
  const K = I + H;
  const hOff = load<i32>(d, D_HOFF);
  const w = <usize>load<i32>(d, D_W);
  const bias = <usize>load<i32>(d, D_B);
  const scratch = <usize>load<i32>(d, D_SCRATCH);
  const clip = f32x4.splat(load<f32>(d, D_CLIP));
  const rowBytes = <usize>K << 2;
  const blockBytes = <usize>K * 48;
  const xBytes = <usize>I * 48;
  // Per key: G groups × (z, nx, h_{t−1}) vectors.
  const keyScratch = <usize>G * 48;
  for (let b = 0; b < n; b++) {
    const row = xh + <usize>b * rowBytes;
    const hRow = row + (<usize>I << 2);
    const ks = scratch + <usize>b * keyScratch;
    for (let g = 0; g < G; g++) {
      const wg = w + <usize>g * blockBytes;
      const bg = bias + (<usize>g << 6);
      let z0 = v128.load(bg);
      let r0 = v128.load(bg, 16);
      let x0 = v128.load(bg, 32);
      let p0 = row;
      let wp = wg;
      const xEnd = wg + xBytes;
      for (; wp < xEnd; wp += 48) {
        const s0 = v128.load32_splat(p0);
        z0 = f32x4.add(z0, f32x4.mul(v128.load(wp), s0));
        r0 = f32x4.add(r0, f32x4.mul(v128.load(wp, 16), s0));
        x0 = f32x4.add(x0, f32x4.mul(v128.load(wp, 32), s0));
        p0 += 4;
      }
      const end = wg + blockBytes;
      for (; wp < end; wp += 48) {
        const s0 = v128.load32_splat(p0);
        z0 = f32x4.add(z0, f32x4.mul(v128.load(wp), s0));
        r0 = f32x4.add(r0, f32x4.mul(v128.load(wp, 16), s0));
        p0 += 4;
      }
      const at = ks + <usize>g * 48;
      v128.store(at, actAt(d, 0, bound(z0, clip)));
      v128.store(at, x0, 16);
      v128.store(at, actAt(d, 0, bound(r0, clip)), 32);
    }
    // r ⊙ h_{t−1} replaces h_{t−1} in the row; h_{t−1} moves to the r slot.
    for (let g = 0; g < G; g++) {
      const at = ks + <usize>g * 48;
      const hp = hRow + (<usize>g << 4);
      const h = v128.load(hp);
      storeLanes(hp, f32x4.mul(v128.load(at, 32), h), min(4, H - (g << 2)));
      v128.store(at, h, 32);
    }
    const out = states + <usize>(b * stride + hOff);
    for (let g = 0; g < G; g++) {
      const wg = w + <usize>g * blockBytes + xBytes;
      let acc = v128.load(bias + (<usize>g << 6), 48);
      let p0 = hRow;
      const end = wg + <usize>H * 48;
      for (let wp = wg; wp < end; wp += 48) {
        acc = f32x4.add(acc, f32x4.mul(v128.load(wp, 32), v128.load32_splat(p0)));
        p0 += 4;
      }
      const at = ks + <usize>g * 48;
      const z = v128.load(at);
      const cand = actAt(d, 1, bound(f32x4.add(v128.load(at, 16), acc), clip));
      const h = v128.load(at, 32);
      const next = f32x4.add(f32x4.mul(f32x4.sub(f32x4.splat(1.0), z), cand), f32x4.mul(z, h));
      storeLanes(out + (<usize>g << 4), next, min(4, H - (g << 2)));
    }
  }
}

/** y = act(W·x + b) for every key; weights per group of 4 outputs: K rows of 4 floats. */
function dense(e: usize, n: i32): void {
  const K = load<i32>(e, E_K);
  const O = load<i32>(e, E_O);
  const G = load<i32>(e, E_G);
  const w = <usize>load<i32>(e, E_W);
  const bias = <usize>load<i32>(e, E_B);
  const code = load<i32>(e, E_ACT);
  const a = load<f32>(e, E_ACT + 4);
  const c = load<f32>(e, E_ACT + 8);
  const inp = <usize>load<i32>(e, E_IN);
  const inStride = <usize>load<i32>(e, E_INSTRIDE);
  const outp = <usize>load<i32>(e, E_OUT);
  const outStride = <usize>load<i32>(e, E_OUTSTRIDE);
  for (let b = 0; b < n; b++) {
    const x = inp + <usize>b * inStride;
    const y = outp + <usize>b * outStride;
    for (let g = 0; g < G; g++) {
      let acc = v128.load(bias + (<usize>g << 4));
      let wp = w + <usize>g * (<usize>K << 4);
      let p = x;
      for (let k = 0; k < K; k++) {
        acc = f32x4.add(acc, f32x4.mul(v128.load(wp), v128.load32_splat(p)));
        wp += 16;
        p += 4;
      }
      v128.store(y + (<usize>g << 4), code == A_SOFTMAX ? acc : act(code, acc, a, c));
    }
    if (code == A_SOFTMAX) softmax(y, O);
  }
}

// Scalar and exact to float32 rounding: the head is small next to the recurrent layers.
function softmax(y: usize, O: i32): void {
  let max: f32 = -Infinity;
  for (let j = 0; j < O; j++) max = Mathf.max(max, load<f32>(y + (<usize>j << 2)));
  let sum: f32 = 0;
  for (let j = 0; j < O; j++) {
    const p = y + (<usize>j << 2);
    const v = Mathf.exp(load<f32>(p) - max);
    store<f32>(p, v);
    sum += v;
  }
  for (let j = 0; j < O; j++) {
    const p = y + (<usize>j << 2);
    store<f32>(p, load<f32>(p) / sum);
  }
}

/** One step for `n` keys: every recurrent layer, the branch concatenation, the head, the output. */
export function run(plan: usize, n: i32): void {
  const states = <usize>load<i32>(plan, P_STATES);
  const stride = load<i32>(plan, P_STRIDE);
  const xh = <usize>load<i32>(plan, P_XH);
  const layers = <usize>load<i32>(plan, P_LAYERS);
  const nLayers = load<i32>(plan, P_NLAYERS);
  for (let l = 0; l < nLayers; l++) {
    const d = layers + <usize>l * LAYER_BYTES;
    if (load<i32>(d, D_KIND) == 0) lstmLayer(d, n, xh, states, stride);
    else if (load<i32>(d, D_FLAGS) != 0) gruLayerAfter(d, n, xh, states, stride);
    else gruLayerBefore(d, n, xh, states, stride);
  }
  // Each branch's last h, side by side: the head's input.
  const concat = <usize>load<i32>(plan, P_CONCAT);
  const concatStride = <usize>load<i32>(plan, P_CONCATSTRIDE);
  const copies = <usize>load<i32>(plan, P_COPIES);
  const nCopy = load<i32>(plan, P_NCOPY);
  for (let b = 0; b < n; b++) {
    const src = states + <usize>(b * stride);
    const dst = concat + <usize>b * concatStride;
    for (let i = 0; i < nCopy; i++) {
      const c = copies + (<usize>i * 12);
      memory.copy(dst + <usize>load<i32>(c, 8), src + <usize>load<i32>(c), <usize>load<i32>(c, 4));
    }
  }
  const head = <usize>load<i32>(plan, P_HEAD);
  const nHead = load<i32>(plan, P_NHEAD);
  for (let i = 0; i < nHead; i++) dense(head + <usize>i * HEAD_BYTES, n);
  // Padded rows to the packed B × O output.
  const result = <usize>load<i32>(plan, P_RESULT);
  const resultStride = <usize>load<i32>(plan, P_RESULTSTRIDE);
  const out = <usize>load<i32>(plan, P_OUT);
  const oBytes = <usize>load<i32>(plan, P_O) << 2;
  for (let b = 0; b < n; b++) memory.copy(out + <usize>b * oBytes, result + <usize>b * resultStride, oBytes);
}
