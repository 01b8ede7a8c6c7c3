// cellstream's SIMD128 step kernel, in AssemblyScript (`npm run build:wasm`).
//
// The JS side (src/model/kernels/wasm/) owns the memory map: it packs each layer's weights
// gate-interleaved for 4 hidden units at a time, writes one descriptor per layer and head layer,
// and either copies the batch's states in and out around `run` or keeps them resident in a slab;
// either way `run` finds key b's state through a table of pointers (P_SPTRS), so a resident key
// is stepped where it lives. Every pointer here is a byte offset into linear memory.
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
const D_XSTATE = 92; // ≥ 0: x is the key's state at this byte offset (a lower layer's h); −1: x is at D_X

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
const P_SPTRS = 16;
const P_PRE = 20;
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

// The activations' constants are read from memory rather than written as v128 constants: V8
// builds every v128.const from immediates (several instructions, not hoisted out of loops),
// while a broadcast load is one instruction from L1.
const KC = memory.data<f32>([
  -87.0, // 0: exp's lower bound
  12582912.0, // 1: 1.5·2^23, rounds to an integer in the mantissa
  1.44269504088896341, // 2: log2(e)
  0.693359375, // 3: ln 2, high part
  -2.12194440e-4, // 4: ln 2, low part
  1.9875691500e-4, // 5..10: Cephes expf polynomial
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
  1.0, // 11
  -2.0, // 12
  0.0, // 13
]);
const KI = memory.data<i32>([127 << 23, 0x80000000, 0x7fffffff]);

// @ts-ignore: decorator
@inline
function kc(i: i32): v128 {
  return v128.load32_splat(KC + (<usize>i << 2));
}

// @ts-ignore: decorator
@inline
function ki(i: i32): v128 {
  return v128.load32_splat(KI + (<usize>i << 2));
}

// exp on 4 lanes, for x ≤ 0 (every caller passes −|·|): Cody–Waite reduction by ln 2 and
// Cephes' degree-7 expf polynomial, ~1 float32 ulp. The integer power of two comes from the
// float's own bits after adding 1.5·2^23 (round to nearest for free), which avoids V8's
// multi-instruction i32x4.trunc_sat lowering; pmin/pmax likewise lower to single minps/maxps,
// where f32x4.min/max need NaN fix-ups.
// @ts-ignore: decorator
@inline
function vexpNeg(x: v128): v128 {
  x = f32x4.pmax(x, kc(0));
  const magic = kc(1);
  const kf = f32x4.add(f32x4.mul(x, kc(2)), magic);
  const n = f32x4.sub(kf, magic);
  let r = f32x4.sub(x, f32x4.mul(n, kc(3)));
  r = f32x4.sub(r, f32x4.mul(n, kc(4)));
  let p = kc(5);
  p = f32x4.add(f32x4.mul(p, r), kc(6));
  p = f32x4.add(f32x4.mul(p, r), kc(7));
  p = f32x4.add(f32x4.mul(p, r), kc(8));
  p = f32x4.add(f32x4.mul(p, r), kc(9));
  p = f32x4.add(f32x4.mul(p, r), kc(10));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), kc(11));
  // bits(kf) = 0x4B400000 + k; shifting by 23 leaves k << 23, the exponent offset to add.
  const scale = i32x4.add(i32x4.shl(kf, 23), ki(0));
  return f32x4.mul(p, scale);
}

// −|x|, and x's sign bit, as bit masks (abs and neg would each build their own constant).
// @ts-ignore: decorator
@inline
function negAbs(x: v128): v128 {
  return v128.or(x, ki(1));
}

// Both built on exp(−|x|) ≤ 1, so nothing overflows and no branch depends on the data.
// @ts-ignore: decorator
@inline
function vsigmoid(x: v128): v128 {
  const e = vexpNeg(negAbs(x));
  const one = kc(11);
  const pos = f32x4.div(one, f32x4.add(one, e));
  return v128.bitselect(pos, f32x4.mul(e, pos), f32x4.ge(x, kc(13)));
}

// @ts-ignore: decorator
@inline
function vtanh(x: v128): v128 {
  const e = vexpNeg(f32x4.add(negAbs(x), negAbs(x)));
  const one = kc(11);
  const t = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  return v128.or(t, v128.and(x, ki(1)));
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
      return f32x4.pmax(x, f32x4.splat(0.0));
    case A_HARD_SIGMOID:
      return f32x4.pmin(
        f32x4.pmax(f32x4.add(f32x4.mul(x, f32x4.splat(a)), f32x4.splat(b)), f32x4.splat(0.0)),
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
        f32x4.mul(f32x4.splat(a), f32x4.sub(vexpNeg(f32x4.pmin(x, f32x4.splat(0.0))), f32x4.splat(1.0))),
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
  return f32x4.pmax(f32x4.pmin(x, clip), f32x4.neg(clip));
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

// @ts-ignore: decorator
@inline
function statePtr(sptrs: usize, b: i32): usize {
  return <usize>load<i32>(sptrs + (<usize>b << 2));
}

// Whole vectors, then floats: memory.copy is a call out of the wasm code in V8, which costs
// more than these rows.
// @ts-ignore: decorator
@inline
function copyFloats(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

/** Copies each key's x and h_{t−1} into one contiguous row of K = I + H floats. */
function gatherXh(d: usize, n: i32, xh: usize, sptrs: usize): void {
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const x = <usize>load<i32>(d, D_X);
  const xStride = load<i32>(d, D_XSTRIDE);
  const xState = load<i32>(d, D_XSTATE);
  const hOff = <usize>load<i32>(d, D_HOFF);
  const rowBytes = <usize>(I + H) << 2;
  for (let b = 0; b < n; b++) {
    const row = xh + <usize>b * rowBytes;
    const s = statePtr(sptrs, b);
    copyFloats(row, xState >= 0 ? s + <usize>xState : x + <usize>(b * xStride), I);
    copyFloats(row + (<usize>I << 2), s + hOff, H);
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

// The common LSTM (sigmoid, tanh, tanh; no peepholes, clip or coupling) without per-call
// activation dispatch: the generic path's switch on a code loaded from the descriptor costs about
// as much as the activations themselves.
// @ts-ignore: decorator
@inline
function lstmFinishPlain(ai: v128, af: v128, ag: v128, ao: v128, cp: usize, hp: usize, count: i32): void {
  const it = vsigmoid(ai);
  const ft = vsigmoid(af);
  const gt = vtanh(ag);
  const ot = vsigmoid(ao);
  const ct = f32x4.add(f32x4.mul(ft, v128.load(cp)), f32x4.mul(it, gt));
  storeLanes(cp, ct, count);
  storeLanes(hp, f32x4.mul(ot, vtanh(ct)), count);
}

// @ts-ignore: decorator
@inline
function lstmFinishAny(
  plain: bool,
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
  if (plain) lstmFinishPlain(ai, af, ag, ao, cp, hp, count);
  else lstmFinish(d, ai, af, ag, ao, peep, clip, coupled, cp, hp, count);
}

// Dot products run in blocks of 16 terms, each block summed from zero and then added to the
// running total (kept in `ACC`), and the bias is added last. Float32 rounding error grows with
// the size of the partial sum it is added to; this halves the worst error against the float64
// reference at K = 80 (measured), for one extra add per accumulator per 16 terms.
const BLOCK = 16;
const ACC = memory.data(256, 16);

// @ts-ignore: decorator
@inline
function zeroAcc(count: i32): void {
  for (let i = 0; i < count; i++) v128.store(ACC + (<usize>i << 4), f32x4.splat(0));
}

// @ts-ignore: decorator
@inline
function addAcc(i: i32, v: v128): void {
  const p = ACC + (<usize>i << 4);
  v128.store(p, f32x4.add(v128.load(p), v));
}

// @ts-ignore: decorator
@inline
function accPlus(i: i32, bias: v128): v128 {
  return f32x4.add(v128.load(ACC + (<usize>i << 4)), bias);
}

/** Two keys × 4 gate vectors over weight rows [wp, end) of 64 bytes; sums into ACC 0–7. */
function lstmDot2(wp: usize, end: usize, p0: usize, p1: usize): void {
  zeroAcc(8);
  while (wp < end) {
    const stop = min<usize>(end, wp + BLOCK * 64);
    let i0 = f32x4.splat(0);
    let f0 = f32x4.splat(0);
    let c0 = f32x4.splat(0);
    let o0 = f32x4.splat(0);
    let i1 = f32x4.splat(0);
    let f1 = f32x4.splat(0);
    let c1 = f32x4.splat(0);
    let o1 = f32x4.splat(0);
    for (; wp < stop; wp += 64) {
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
      p0 += 4;
      p1 += 4;
    }
    addAcc(0, i0);
    addAcc(1, f0);
    addAcc(2, c0);
    addAcc(3, o0);
    addAcc(4, i1);
    addAcc(5, f1);
    addAcc(6, c1);
    addAcc(7, o1);
  }
}

/** One key × 4 gate vectors; sums into ACC 0–3. The running totals stay in registers. */
function lstmDot1(wp: usize, end: usize, p0: usize): void {
  let ti = f32x4.splat(0);
  let tf = f32x4.splat(0);
  let tc = f32x4.splat(0);
  let to = f32x4.splat(0);
  while (wp < end) {
    const stop = min<usize>(end, wp + BLOCK * 64);
    let i0 = f32x4.splat(0);
    let f0 = f32x4.splat(0);
    let c0 = f32x4.splat(0);
    let o0 = f32x4.splat(0);
    for (; wp < stop; wp += 64) {
      const x = v128.load32_splat(p0);
      i0 = f32x4.add(i0, f32x4.mul(v128.load(wp), x));
      f0 = f32x4.add(f0, f32x4.mul(v128.load(wp, 16), x));
      c0 = f32x4.add(c0, f32x4.mul(v128.load(wp, 32), x));
      o0 = f32x4.add(o0, f32x4.mul(v128.load(wp, 48), x));
      p0 += 4;
    }
    ti = f32x4.add(ti, i0);
    tf = f32x4.add(tf, f0);
    tc = f32x4.add(tc, c0);
    to = f32x4.add(to, o0);
  }
  v128.store(ACC, ti);
  v128.store(ACC, tf, 16);
  v128.store(ACC, tc, 32);
  v128.store(ACC, to, 48);
}

// Each layer runs in two phases: every (key, group)'s dot products into `pre` (bias added),
// then every activation. Fused, a group's activations (a serial chain of exp polynomial and
// division, ~130 cycles from i, f, g to h) could not overlap anything, since the next group's
// dot loop is too long for the reorder buffer to reach past; apart, the activation loop's
// iterations are independent and overlap each other. This took the plain LSTM's step at H=64
// from 2.2 to ~1.6 µs.
function lstmLayer(d: usize, n: i32, xh: usize, sptrs: usize, pre: usize): void {
  gatherXh(d, n, xh, sptrs);
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const G = load<i32>(d, D_G);
  const K = I + H;
  const hOff = <usize>load<i32>(d, D_HOFF);
  const cOff = <usize>load<i32>(d, D_COFF);
  const w = <usize>load<i32>(d, D_W);
  const bias = <usize>load<i32>(d, D_B);
  const peeps = <usize>load<i32>(d, D_P);
  const coupled = (load<i32>(d, D_FLAGS) & 1) != 0;
  const plain = (load<i32>(d, D_FLAGS) & 2) != 0;
  const clip = f32x4.splat(load<f32>(d, D_CLIP));
  const rowBytes = <usize>K << 2;
  const blockBytes = <usize>K << 6;
  // pre[b][g] is 4 vectors (i, f, g, o) = 64 bytes.
  const keyPre = <usize>G << 6;
  // Groups outer, key pairs inner: the group's weight block (K × 64 bytes) stays in L1 while
  // every pair of keys streams past it.
  for (let g = 0; g < G; g++) {
    const wg = w + <usize>g * blockBytes;
    const bg = bias + (<usize>g << 6);
    const bi = v128.load(bg);
    const bf = v128.load(bg, 16);
    const bc = v128.load(bg, 32);
    const bo = v128.load(bg, 48);
    let q = pre + (<usize>g << 6);
    for (let b = 0; b + 1 < n; b += 2) {
      const p0 = xh + <usize>b * rowBytes;
      lstmDot2(wg, wg + blockBytes, p0, p0 + rowBytes);
      v128.store(q, accPlus(0, bi));
      v128.store(q, accPlus(1, bf), 16);
      v128.store(q, accPlus(2, bc), 32);
      v128.store(q, accPlus(3, bo), 48);
      q += keyPre;
      v128.store(q, accPlus(4, bi));
      v128.store(q, accPlus(5, bf), 16);
      v128.store(q, accPlus(6, bc), 32);
      v128.store(q, accPlus(7, bo), 48);
      q += keyPre;
    }
    if (n & 1) {
      lstmDot1(wg, wg + blockBytes, xh + <usize>(n - 1) * rowBytes);
      v128.store(q, accPlus(0, bi));
      v128.store(q, accPlus(1, bf), 16);
      v128.store(q, accPlus(2, bc), 32);
      v128.store(q, accPlus(3, bo), 48);
    }
  }
  for (let b = 0; b < n; b++) {
    const s = statePtr(sptrs, b);
    let q = pre + <usize>b * keyPre;
    for (let g = 0; g < G; g++) {
      const count = min(4, H - (g << 2));
      const unit = s + <usize>(g << 4);
      lstmFinishAny(
        plain,
        d,
        v128.load(q),
        v128.load(q, 16),
        v128.load(q, 32),
        v128.load(q, 48),
        peeps + <usize>g * 48,
        clip,
        coupled,
        unit + cOff,
        unit + hOff,
        count,
      );
      q += 64;
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

/**
 * Two keys × 3 gate vectors over GRU weight rows [wp, end) of 48 bytes, summed into ACC slots
 * z0, r0, n0 and z0 + 4, … for the second key: the n slot is the input or the recurrent part.
 */
function gruDot2(wp: usize, end: usize, p0: usize, p1: usize, n: i32): void {
  while (wp < end) {
    const stop = min<usize>(end, wp + BLOCK * 48);
    let z0 = f32x4.splat(0);
    let r0 = f32x4.splat(0);
    let n0 = f32x4.splat(0);
    let z1 = f32x4.splat(0);
    let r1 = f32x4.splat(0);
    let n1 = f32x4.splat(0);
    for (; wp < stop; wp += 48) {
      const wz = v128.load(wp);
      const wr = v128.load(wp, 16);
      const wn = v128.load(wp, 32);
      const s0 = v128.load32_splat(p0);
      const s1 = v128.load32_splat(p1);
      z0 = f32x4.add(z0, f32x4.mul(wz, s0));
      r0 = f32x4.add(r0, f32x4.mul(wr, s0));
      n0 = f32x4.add(n0, f32x4.mul(wn, s0));
      z1 = f32x4.add(z1, f32x4.mul(wz, s1));
      r1 = f32x4.add(r1, f32x4.mul(wr, s1));
      n1 = f32x4.add(n1, f32x4.mul(wn, s1));
      p0 += 4;
      p1 += 4;
    }
    addAcc(0, z0);
    addAcc(1, r0);
    addAcc(n, n0);
    addAcc(4, z1);
    addAcc(5, r1);
    addAcc(n + 4, n1);
  }
}

/** One key × 3 gate vectors (or only the n column when `nOnly`), as gruDot2. */
function gruDot1(wp: usize, end: usize, p0: usize, n: i32, nOnly: bool): void {
  while (wp < end) {
    const stop = min<usize>(end, wp + BLOCK * 48);
    let z0 = f32x4.splat(0);
    let r0 = f32x4.splat(0);
    let n0 = f32x4.splat(0);
    if (nOnly) {
      for (; wp < stop; wp += 48) {
        n0 = f32x4.add(n0, f32x4.mul(v128.load(wp, 32), v128.load32_splat(p0)));
        p0 += 4;
      }
    } else {
      for (; wp < stop; wp += 48) {
        const s0 = v128.load32_splat(p0);
        z0 = f32x4.add(z0, f32x4.mul(v128.load(wp), s0));
        r0 = f32x4.add(r0, f32x4.mul(v128.load(wp, 16), s0));
        n0 = f32x4.add(n0, f32x4.mul(v128.load(wp, 32), s0));
        p0 += 4;
      }
      addAcc(0, z0);
      addAcc(1, r0);
    }
    addAcc(n, n0);
  }
}

/** linearBeforeReset = true: one pass of dot products, r applied to R_n·h + bR_n; two phases as the LSTM. */
function gruLayerAfter(d: usize, n: i32, xh: usize, sptrs: usize, pre: usize): void {
  gatherXh(d, n, xh, sptrs);
  const I = load<i32>(d, D_I);
  const H = load<i32>(d, D_H);
  const G = load<i32>(d, D_G);
  const K = I + H;
  const hOff = <usize>load<i32>(d, D_HOFF);
  const w = <usize>load<i32>(d, D_W);
  const bias = <usize>load<i32>(d, D_B);
  const clip = f32x4.splat(load<f32>(d, D_CLIP));
  const rowBytes = <usize>K << 2;
  const blockBytes = <usize>K * 48;
  const xBytes = <usize>I * 48;
  const hRow = <usize>I << 2;
  // pre[b][g] is z, r, the candidate's input part and its recurrent part: 64 bytes.
  const keyPre = <usize>G << 6;
  for (let g = 0; g < G; g++) {
    const wg = w + <usize>g * blockBytes;
    const bg = bias + (<usize>g << 6);
    const bz = v128.load(bg);
    const br = v128.load(bg, 16);
    const bx = v128.load(bg, 32);
    const bh = v128.load(bg, 48);
    let q = pre + (<usize>g << 6);
    for (let b = 0; b + 1 < n; b += 2) {
      const p0 = xh + <usize>b * rowBytes;
      const p1 = p0 + rowBytes;
      zeroAcc(8);
      gruDot2(wg, wg + xBytes, p0, p1, 2);
      gruDot2(wg + xBytes, wg + blockBytes, p0 + hRow, p1 + hRow, 3);
      v128.store(q, accPlus(0, bz));
      v128.store(q, accPlus(1, br), 16);
      v128.store(q, accPlus(2, bx), 32);
      v128.store(q, accPlus(3, bh), 48);
      q += keyPre;
      v128.store(q, accPlus(4, bz));
      v128.store(q, accPlus(5, br), 16);
      v128.store(q, accPlus(6, bx), 32);
      v128.store(q, accPlus(7, bh), 48);
      q += keyPre;
    }
    if (n & 1) {
      const p0 = xh + <usize>(n - 1) * rowBytes;
      zeroAcc(4);
      gruDot1(wg, wg + xBytes, p0, 2, false);
      gruDot1(wg + xBytes, wg + blockBytes, p0 + hRow, 3, false);
      v128.store(q, accPlus(0, bz));
      v128.store(q, accPlus(1, br), 16);
      v128.store(q, accPlus(2, bx), 32);
      v128.store(q, accPlus(3, bh), 48);
    }
  }
  for (let b = 0; b < n; b++) {
    const s = statePtr(sptrs, b) + hOff;
    const hPrev = xh + <usize>b * rowBytes + hRow;
    let q = pre + <usize>b * keyPre;
    for (let g = 0; g < G; g++) {
      const unit = <usize>(g << 4);
      gruFinish(
        d,
        v128.load(q),
        v128.load(q, 16),
        v128.load(q, 32),
        v128.load(q, 48),
        clip,
        hPrev + unit,
        s + unit,
        min(4, H - (g << 2)),
      );
      q += 64;
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
function gruLayerBefore(d: usize, n: i32, xh: usize, sptrs: usize): void {
  gatherXh(d, n, xh, sptrs);
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
      zeroAcc(3);
      gruDot1(wg, wg + xBytes, row, 2, false);
      gruDot1(wg + xBytes, wg + blockBytes, hRow, 3, false);
      const at = ks + <usize>g * 48;
      v128.store(at, actAt(d, 0, bound(accPlus(0, v128.load(bg)), clip)));
      v128.store(at, accPlus(2, v128.load(bg, 32)), 16);
      v128.store(at, actAt(d, 0, bound(accPlus(1, v128.load(bg, 16)), clip)), 32);
    }
    // r ⊙ h_{t−1} replaces h_{t−1} in the row; h_{t−1} moves to the r slot.
    for (let g = 0; g < G; g++) {
      const at = ks + <usize>g * 48;
      const hp = hRow + (<usize>g << 4);
      const h = v128.load(hp);
      storeLanes(hp, f32x4.mul(v128.load(at, 32), h), min(4, H - (g << 2)));
      v128.store(at, h, 32);
    }
    const out = statePtr(sptrs, b) + <usize>hOff;
    for (let g = 0; g < G; g++) {
      const wg = w + <usize>g * blockBytes + xBytes;
      zeroAcc(4);
      gruDot1(wg, wg + <usize>H * 48, hRow, 3, true);
      const at = ks + <usize>g * 48;
      const z = v128.load(at);
      const nh = accPlus(3, v128.load(bias + (<usize>g << 6), 48));
      const cand = actAt(d, 1, bound(f32x4.add(v128.load(at, 16), nh), clip));
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
      let acc = f32x4.splat(0);
      let wp = w + <usize>g * (<usize>K << 4);
      const end = wp + (<usize>K << 4);
      let p = x;
      while (wp < end) {
        const stop = min<usize>(end, wp + BLOCK * 16);
        let part = f32x4.splat(0);
        for (; wp < stop; wp += 16) {
          part = f32x4.add(part, f32x4.mul(v128.load(wp), v128.load32_splat(p)));
          p += 4;
        }
        acc = f32x4.add(acc, part);
      }
      acc = f32x4.add(acc, v128.load(bias + (<usize>g << 4)));
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
  const sptrs = <usize>load<i32>(plan, P_SPTRS);
  const pre = <usize>load<i32>(plan, P_PRE);
  const xh = <usize>load<i32>(plan, P_XH);
  const layers = <usize>load<i32>(plan, P_LAYERS);
  const nLayers = load<i32>(plan, P_NLAYERS);
  for (let l = 0; l < nLayers; l++) {
    const d = layers + <usize>l * LAYER_BYTES;
    if (load<i32>(d, D_KIND) == 0) lstmLayer(d, n, xh, sptrs, pre);
    else if (load<i32>(d, D_FLAGS) != 0) gruLayerAfter(d, n, xh, sptrs, pre);
    else gruLayerBefore(d, n, xh, sptrs);
  }
  // Each branch's last h, side by side: the head's input.
  const concat = <usize>load<i32>(plan, P_CONCAT);
  const concatStride = <usize>load<i32>(plan, P_CONCATSTRIDE);
  const copies = <usize>load<i32>(plan, P_COPIES);
  const nCopy = load<i32>(plan, P_NCOPY);
  for (let b = 0; b < n; b++) {
    const src = statePtr(sptrs, b);
    const dst = concat + <usize>b * concatStride;
    for (let i = 0; i < nCopy; i++) {
      const c = copies + (<usize>i * 12);
      copyFloats(dst + <usize>load<i32>(c, 8), src + <usize>load<i32>(c), load<i32>(c, 4) >> 2);
    }
  }
  const head = <usize>load<i32>(plan, P_HEAD);
  const nHead = load<i32>(plan, P_NHEAD);
  for (let i = 0; i < nHead; i++) dense(head + <usize>i * HEAD_BYTES, n);
  // Padded rows to the packed B × O output.
  const result = <usize>load<i32>(plan, P_RESULT);
  const resultStride = <usize>load<i32>(plan, P_RESULTSTRIDE);
  const out = <usize>load<i32>(plan, P_OUT);
  const O = load<i32>(plan, P_O);
  for (let b = 0; b < n; b++) copyFloats(out + <usize>(b * O) * 4, result + <usize>b * resultStride, O);
}
