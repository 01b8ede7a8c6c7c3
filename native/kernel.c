// cellstream's native step kernel: a Node-API addon in C11 with x86-64 AVX2 + FMA code paths.
// Built by scripts/build-native.mjs (no node-gyp); loaded by src/model/kernels/native/.
//
// The JS side packs each layer's weights gate-interleaved for 8 hidden units at a time (one ymm
// register per gate), describes the model in an Int32Array, and owns the buffers this code reads
// and writes: the states' slab, the slot table, the staged inputs and the outputs. The addon
// copies the weights into its own 32-byte aligned memory and keeps its scratch there.
//
// Batch independence: a key's result bits must not depend on which batch, or which slot of it,
// the key is stepped in (docs/architecture.md, delivery rules: a redelivered event recomputed in another
// batch repeats its prediction exactly). Every tile below therefore gives each (key, unit group,
// gate) accumulator the same sequence of operations — zero, FMA over one block of 16 terms in k
// order, add into the running total — whether the key is stepped alone, in a pair, or with its
// neighbouring group; activations and heads are per key. No -ffast-math: the compiler may not
// reassociate, and -ffp-contract=off keeps the scalar code from fusing differently per call site.

#define NAPI_VERSION 8
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#define CS_X86 1
#include <immintrin.h>
#define TGT __attribute__((target("avx2,fma")))
#endif

enum { KIND_LSTM = 0, KIND_GRU = 1 };
// Head activation codes, shared with src/model/kernels/native/pack.ts.
enum { A_SIGMOID = 0, A_TANH = 1, A_RELU = 2, A_LINEAR = 3, A_SOFTMAX = 11 };

// Terms per partial sum: each block is summed from zero and then added to the running total,
// which roughly halves the worst float32 error at K = 80 against one long chain (the wasm
// kernel measured the same), for one add per accumulator per 16 terms.
#define BLOCK 16

typedef struct {
  int kind, I, H, G, K;
  int xInput; // the input feeding this layer when xState < 0
  int xState; // float offset of x inside the key's state (the layer below's h), or -1
  int hOff, cOff;
  float *w, *b;
} Layer;

typedef struct {
  int K, O, G, act;
  float *w, *b;
} Head;

typedef struct {
  int nLayers, nHead, nInputs, nBranch;
  int S, O, chunk, capacity, maxG, concatStride, headStride;
  int *inputSizes;
  Layer *layers;
  Head *heads;
  int *copies; // per branch: h offset in the state, H, offset in the concatenation
  // Owned by JS (kept alive by the JS object that holds this plan's handle).
  float *slab;
  int32_t *slots;
  float *out;
  float **inputs;
  // Scratch, owned here.
  float **sptr;
  float *pre, *concat, *hbuf[2];
} Plan;

static void *alloc32(size_t floats) {
  // Slack after every region so that a full 8-lane load at the last group stays inside it.
  size_t bytes = ((floats + 16) * sizeof(float) + 31) & ~(size_t)31;
  void *p = aligned_alloc(32, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

static void plan_free(Plan *p) {
  if (!p) return;
  if (p->layers)
    for (int l = 0; l < p->nLayers; l++) {
      free(p->layers[l].w);
      free(p->layers[l].b);
    }
  if (p->heads)
    for (int i = 0; i < p->nHead; i++) {
      free(p->heads[i].w);
      free(p->heads[i].b);
    }
  free(p->layers);
  free(p->heads);
  free(p->inputSizes);
  free(p->copies);
  free(p->inputs);
  free(p->sptr);
  free(p->pre);
  free(p->concat);
  free(p->hbuf[0]);
  free(p->hbuf[1]);
  free(p);
}

static int cpu_ok(void) {
#ifdef CS_X86
  static int ok = -1;
  if (ok < 0) {
    __builtin_cpu_init();
    ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return ok;
#else
  return 0;
#endif
}

#ifdef CS_X86

#define V __m256
#define ZERO _mm256_setzero_ps()
#define SET(x) _mm256_set1_ps(x)
#define LD(p) _mm256_load_ps(p)
#define ST(p, v) _mm256_store_ps(p, v)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define ADD(a, b) _mm256_add_ps(a, b)
#define MUL(a, b) _mm256_mul_ps(a, b)
#define BC(p) _mm256_broadcast_ss(p)
// A weight vector loaded into a register once: gcc would otherwise fold the load into each of
// the tile's FMAs, doubling the loads (10 per 8 FMAs), and the loop becomes load-bound.
#define REG(v) __asm__("" : "+x"(v))

// exp for x ≤ 0 (every caller passes −|·|): Cody–Waite reduction by ln 2 and Cephes' degree-7
// expf polynomial, ~1 float32 ulp. The power of two comes from the float's own bits after adding
// 1.5·2^23 (round to nearest for free): bits(kf) = 0x4B400000 + k, and shifting left by 23 leaves
// k << 23. The clamp at −87 keeps 2^k normal.
TGT static inline V vexp_neg(V x) {
  x = _mm256_max_ps(x, SET(-87.0f));
  const V magic = SET(12582912.0f);
  V kf = FMA(x, SET(1.44269504088896341f), magic);
  V n = _mm256_sub_ps(kf, magic);
  V r = _mm256_fnmadd_ps(n, SET(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, SET(-2.12194440e-4f), r);
  V p = SET(1.9875691500e-4f);
  p = FMA(p, r, SET(1.3981999507e-3f));
  p = FMA(p, r, SET(8.3334519073e-3f));
  p = FMA(p, r, SET(4.1665795894e-2f));
  p = FMA(p, r, SET(1.6666665459e-1f));
  p = FMA(p, r, SET(5.0000001201e-1f));
  p = ADD(FMA(p, MUL(r, r), r), SET(1.0f));
  __m256i scale = _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(kf), 23), _mm256_set1_epi32(127 << 23));
  return MUL(p, _mm256_castsi256_ps(scale));
}

static const int32_t SIGN = (int32_t)0x80000000;

TGT static inline V neg_abs(V x) { return _mm256_or_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(SIGN))); }

// Both from exp(−|x|) ≤ 1: nothing overflows, and no branch depends on the data.
TGT static inline V vsigmoid(V x) {
  V e = vexp_neg(neg_abs(x));
  V pos = _mm256_div_ps(SET(1.0f), ADD(SET(1.0f), e));
  return _mm256_blendv_ps(MUL(e, pos), pos, _mm256_cmp_ps(x, ZERO, _CMP_GE_OQ));
}

TGT static inline V vtanh(V x) {
  V na = neg_abs(x);
  V e = vexp_neg(ADD(na, na));
  V t = _mm256_div_ps(_mm256_sub_ps(SET(1.0f), e), ADD(SET(1.0f), e));
  return _mm256_or_ps(t, _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(SIGN))));
}

// Lanes [0, count) set: the last group of a layer whose H is not a multiple of 8 must not read
// past the slab or spill into the neighbouring state values.
TGT static inline __m256i lane_mask(int count) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), idx);
}

TGT static inline V load_n(const float *p, int count) {
  return count >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask(count));
}

TGT static inline void store_n(float *p, V v, int count) {
  if (count >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, lane_mask(count), v);
}

// --- Dot products. NG gate vectors of 8 units per weight row (row stride NG × 8 floats). ---

// Two keys × 4 gates over rows [k0, k1) of one group: 8 accumulators, every weight load used
// for both keys. `t0`, `t1`: each key's 4 running totals.
TGT static inline void dot4_pair(const float *w, int k0, int k1, const float *x0, const float *x1, V *t0, V *t1) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V a0 = ZERO, b0 = ZERO, c0 = ZERO, d0 = ZERO, a1 = ZERO, b1 = ZERO, c1 = ZERO, d1 = ZERO;
    for (int k = kb; k < ke; k++) {
      const float *r = w + (size_t)k * 32;
      V wa = LD(r), wb = LD(r + 8), wc = LD(r + 16), wd = LD(r + 24);
      REG(wa);
      REG(wb);
      REG(wc);
      REG(wd);
      V s0 = BC(x0 + k), s1 = BC(x1 + k);
      a0 = FMA(wa, s0, a0);
      b0 = FMA(wb, s0, b0);
      c0 = FMA(wc, s0, c0);
      d0 = FMA(wd, s0, d0);
      a1 = FMA(wa, s1, a1);
      b1 = FMA(wb, s1, b1);
      c1 = FMA(wc, s1, c1);
      d1 = FMA(wd, s1, d1);
    }
    t0[0] = ADD(t0[0], a0);
    t0[1] = ADD(t0[1], b0);
    t0[2] = ADD(t0[2], c0);
    t0[3] = ADD(t0[3], d0);
    t1[0] = ADD(t1[0], a1);
    t1[1] = ADD(t1[1], b1);
    t1[2] = ADD(t1[2], c1);
    t1[3] = ADD(t1[3], d1);
  }
}

// One key × two groups (weights wA, wB) × 4 gates: again 8 independent accumulators, so the
// FMA latency stays hidden when a key is stepped alone.
TGT static inline void dot4_groups(const float *wA, const float *wB, int k0, int k1, const float *x, V *tA, V *tB) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V a0 = ZERO, b0 = ZERO, c0 = ZERO, d0 = ZERO, a1 = ZERO, b1 = ZERO, c1 = ZERO, d1 = ZERO;
    for (int k = kb; k < ke; k++) {
      const float *r = wA + (size_t)k * 32;
      const float *q = wB + (size_t)k * 32;
      V s = BC(x + k);
      a0 = FMA(LD(r), s, a0);
      b0 = FMA(LD(r + 8), s, b0);
      c0 = FMA(LD(r + 16), s, c0);
      d0 = FMA(LD(r + 24), s, d0);
      a1 = FMA(LD(q), s, a1);
      b1 = FMA(LD(q + 8), s, b1);
      c1 = FMA(LD(q + 16), s, c1);
      d1 = FMA(LD(q + 24), s, d1);
    }
    tA[0] = ADD(tA[0], a0);
    tA[1] = ADD(tA[1], b0);
    tA[2] = ADD(tA[2], c0);
    tA[3] = ADD(tA[3], d0);
    tB[0] = ADD(tB[0], a1);
    tB[1] = ADD(tB[1], b1);
    tB[2] = ADD(tB[2], c1);
    tB[3] = ADD(tB[3], d1);
  }
}

// One key × one group × 4 gates: only for the last group of an odd count, of a key stepped alone.
TGT static inline void dot4_one(const float *w, int k0, int k1, const float *x, V *t) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V a0 = ZERO, b0 = ZERO, c0 = ZERO, d0 = ZERO;
    for (int k = kb; k < ke; k++) {
      const float *r = w + (size_t)k * 32;
      V s = BC(x + k);
      a0 = FMA(LD(r), s, a0);
      b0 = FMA(LD(r + 8), s, b0);
      c0 = FMA(LD(r + 16), s, c0);
      d0 = FMA(LD(r + 24), s, d0);
    }
    t[0] = ADD(t[0], a0);
    t[1] = ADD(t[1], b0);
    t[2] = ADD(t[2], c0);
    t[3] = ADD(t[3], d0);
  }
}

// The GRU's three gates (z, r, n), 24 floats a row. `n` is the slot the candidate's sum goes to:
// 2 over the input rows, 3 over the recurrent rows, which the reset gate multiplies apart.
TGT static inline void dot3_pair(const float *w, int k0, int k1, const float *x0, const float *x1, V *t0, V *t1, int n) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V a0 = ZERO, b0 = ZERO, c0 = ZERO, a1 = ZERO, b1 = ZERO, c1 = ZERO;
    for (int k = kb; k < ke; k++) {
      const float *r = w + (size_t)k * 24;
      V wa = LD(r), wb = LD(r + 8), wc = LD(r + 16);
      REG(wa);
      REG(wb);
      REG(wc);
      V s0 = BC(x0 + k), s1 = BC(x1 + k);
      a0 = FMA(wa, s0, a0);
      b0 = FMA(wb, s0, b0);
      c0 = FMA(wc, s0, c0);
      a1 = FMA(wa, s1, a1);
      b1 = FMA(wb, s1, b1);
      c1 = FMA(wc, s1, c1);
    }
    t0[0] = ADD(t0[0], a0);
    t0[1] = ADD(t0[1], b0);
    t0[n] = ADD(t0[n], c0);
    t1[0] = ADD(t1[0], a1);
    t1[1] = ADD(t1[1], b1);
    t1[n] = ADD(t1[n], c1);
  }
}

TGT static inline void dot3_groups(const float *wA, const float *wB, int k0, int k1, const float *x, V *tA, V *tB, int n) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V a0 = ZERO, b0 = ZERO, c0 = ZERO, a1 = ZERO, b1 = ZERO, c1 = ZERO;
    for (int k = kb; k < ke; k++) {
      const float *r = wA + (size_t)k * 24;
      const float *q = wB + (size_t)k * 24;
      V s = BC(x + k);
      a0 = FMA(LD(r), s, a0);
      b0 = FMA(LD(r + 8), s, b0);
      c0 = FMA(LD(r + 16), s, c0);
      a1 = FMA(LD(q), s, a1);
      b1 = FMA(LD(q + 8), s, b1);
      c1 = FMA(LD(q + 16), s, c1);
    }
    tA[0] = ADD(tA[0], a0);
    tA[1] = ADD(tA[1], b0);
    tA[n] = ADD(tA[n], c0);
    tB[0] = ADD(tB[0], a1);
    tB[1] = ADD(tB[1], b1);
    tB[n] = ADD(tB[n], c1);
  }
}

TGT static inline void dot3_one(const float *w, int k0, int k1, const float *x, V *t, int n) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V a0 = ZERO, b0 = ZERO, c0 = ZERO;
    for (int k = kb; k < ke; k++) {
      const float *r = w + (size_t)k * 24;
      V s = BC(x + k);
      a0 = FMA(LD(r), s, a0);
      b0 = FMA(LD(r + 8), s, b0);
      c0 = FMA(LD(r + 16), s, c0);
    }
    t[0] = ADD(t[0], a0);
    t[1] = ADD(t[1], b0);
    t[n] = ADD(t[n], c0);
  }
}

// pre[b][g]: 4 vectors of 8 (LSTM: i, f, g, o; GRU: z, r, the candidate's input and recurrent
// sums), biases added.
static inline float *pre_at(const Plan *p, const Layer *L, int b, int g) {
  return p->pre + ((size_t)b * L->G + g) * 32;
}

TGT static inline void store_pre(float *q, const V *t, const float *bias) {
  for (int j = 0; j < 4; j++) ST(q + 8 * j, ADD(t[j], LD(bias + 8 * j)));
}

TGT static inline void lstm_finish(const Plan *p, const Layer *L, int b, int g) {
  float *s = p->sptr[b];
  const float *q = pre_at(p, L, b, g);
  const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
  float *cp = s + L->cOff + 8 * g, *hp = s + L->hOff + 8 * g;
  V it = vsigmoid(LD(q)), ft = vsigmoid(LD(q + 8)), gt = vtanh(LD(q + 16)), ot = vsigmoid(LD(q + 24));
  V ct = FMA(ft, load_n(cp, count), MUL(it, gt));
  store_n(cp, ct, count);
  store_n(hp, MUL(ot, vtanh(ct)), count);
}

// Where key b's x (the input, or the layer below's fresh h) and h_{t−1} are: read in place, so a
// layer gathers nothing. Every h_{t−1} is read by the dot products before any is overwritten.
static inline const float *x_of(const Plan *p, const Layer *L, int b) {
  return L->xState >= 0 ? p->sptr[b] + L->xState : p->inputs[L->xInput] + (size_t)b * L->I;
}

static inline const float *h_of(const Plan *p, const Layer *L, int b) { return p->sptr[b] + L->hOff; }

// The dot products of a layer, every key and group, into `pre`: the input rows, then the
// recurrent rows (each range in its own blocks). Groups outer, key pairs inner: a group's weight
// block (K rows) stays in L1 while the keys' x and h stream past it. A key stepped alone (n = 1,
// or the last of an odd batch) takes its groups two at a time.
TGT static void layer_dots(const Plan *p, const Layer *L, int n) {
  const int K = L->K, I = L->I, H = L->H, G = L->G, NG = L->kind == KIND_LSTM ? 4 : 3;
  const size_t blockF = (size_t)K * NG * 8, hRows = (size_t)I * NG * 8;
  for (int g = 0; g < G; g++) {
    const float *wg = L->w + g * blockF;
    const float *bg = L->b + (size_t)g * 32;
    for (int b = 0; b + 1 < n; b += 2) {
      const float *x0 = x_of(p, L, b), *x1 = x_of(p, L, b + 1), *h0 = h_of(p, L, b), *h1 = h_of(p, L, b + 1);
      V t0[4] = {ZERO, ZERO, ZERO, ZERO}, t1[4] = {ZERO, ZERO, ZERO, ZERO};
      if (NG == 4) {
        dot4_pair(wg, 0, I, x0, x1, t0, t1);
        dot4_pair(wg + hRows, 0, H, h0, h1, t0, t1);
      } else {
        dot3_pair(wg, 0, I, x0, x1, t0, t1, 2);
        dot3_pair(wg + hRows, 0, H, h0, h1, t0, t1, 3);
      }
      store_pre(pre_at(p, L, b, g), t0, bg);
      store_pre(pre_at(p, L, b + 1, g), t1, bg);
    }
  }
  if (!(n & 1)) return;
  const int b = n - 1;
  const float *x = x_of(p, L, b), *h = h_of(p, L, b);
  int g = 0;
  for (; g + 1 < G; g += 2) {
    V tA[4] = {ZERO, ZERO, ZERO, ZERO}, tB[4] = {ZERO, ZERO, ZERO, ZERO};
    const float *wA = L->w + g * blockF, *wB = wA + blockF;
    if (NG == 4) {
      dot4_groups(wA, wB, 0, I, x, tA, tB);
      dot4_groups(wA + hRows, wB + hRows, 0, H, h, tA, tB);
    } else {
      dot3_groups(wA, wB, 0, I, x, tA, tB, 2);
      dot3_groups(wA + hRows, wB + hRows, 0, H, h, tA, tB, 3);
    }
    store_pre(pre_at(p, L, b, g), tA, L->b + (size_t)g * 32);
    store_pre(pre_at(p, L, b, g + 1), tB, L->b + (size_t)(g + 1) * 32);
  }
  if (g < G) {
    V t[4] = {ZERO, ZERO, ZERO, ZERO};
    const float *w = L->w + g * blockF;
    if (NG == 4) {
      dot4_one(w, 0, I, x, t);
      dot4_one(w + hRows, 0, H, h, t);
    } else {
      dot3_one(w, 0, I, x, t, 2);
      dot3_one(w + hRows, 0, H, h, t, 3);
    }
    store_pre(pre_at(p, L, b, g), t, L->b + (size_t)g * 32);
  }
}

// Activations after all the dot products, not fused into them: a group's activations are a
// serial chain (exp polynomial, division) that could overlap nothing next to the following
// group's long dot loop; here the iterations are independent and overlap each other.
TGT static void lstm_layer(const Plan *p, const Layer *L, int n) {
  layer_dots(p, L, n);
  for (int b = 0; b < n; b++)
    for (int g = 0; g < L->G; g++) lstm_finish(p, L, b, g);
}

// GRU with the reset gate applied after the recurrent product (linear_before_reset,
// Keras reset_after=True): candidate = tanh(W_n·x + bW_n + r ⊙ (R_n·h + bR_n)).
TGT static void gru_layer(const Plan *p, const Layer *L, int n) {
  layer_dots(p, L, n);
  for (int b = 0; b < n; b++) {
    float *hs = p->sptr[b] + L->hOff;
    for (int g = 0; g < L->G; g++) {
      const float *q = pre_at(p, L, b, g);
      const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
      V z = vsigmoid(LD(q)), r = vsigmoid(LD(q + 8));
      V cand = vtanh(FMA(r, LD(q + 24), LD(q + 16)));
      V h = load_n(hs + 8 * g, count); // h_{t−1}, overwritten just below
      // (1 − z)·cand + z·h, as the reference writes it.
      store_n(hs + 8 * g, ADD(MUL(_mm256_sub_ps(SET(1.0f), z), cand), MUL(z, h)), count);
    }
  }
}

// Scalar and exact to float32 rounding: the head is small next to the recurrent layers.
static void softmax(float *y, int O) {
  float max = -INFINITY;
  for (int j = 0; j < O; j++) max = y[j] > max ? y[j] : max;
  float sum = 0;
  for (int j = 0; j < O; j++) {
    y[j] = expf(y[j] - max);
    sum += y[j];
  }
  for (int j = 0; j < O; j++) y[j] /= sum;
}

// y = act(W·x + b) per key, weights per group of 8 outputs: K rows of 8 floats.
TGT static void dense(const Head *h, const float *in, int inStride, float *outp, int outStride, int n) {
  for (int b = 0; b < n; b++) {
    const float *x = in + (size_t)b * inStride;
    float *y = outp + (size_t)b * outStride;
    for (int g = 0; g < h->G; g++) {
      const float *w = h->w + (size_t)g * h->K * 8;
      V acc = ZERO;
      for (int kb = 0; kb < h->K; kb += BLOCK) {
        int ke = kb + BLOCK < h->K ? kb + BLOCK : h->K;
        V part = ZERO;
        for (int k = kb; k < ke; k++) part = FMA(LD(w + (size_t)k * 8), BC(x + k), part);
        acc = ADD(acc, part);
      }
      acc = ADD(acc, LD(h->b + 8 * g));
      switch (h->act) {
        case A_SIGMOID: acc = vsigmoid(acc); break;
        case A_TANH: acc = vtanh(acc); break;
        case A_RELU: acc = _mm256_max_ps(acc, ZERO); break;
        default: break; // linear, and softmax's logits
      }
      ST(y + 8 * g, acc);
    }
    if (h->act == A_SOFTMAX) softmax(y, h->O);
  }
}

TGT static void run_avx2(Plan *p, int n) {
  for (int l = 0; l < p->nLayers; l++) {
    const Layer *L = &p->layers[l];
    if (L->kind == KIND_LSTM)
      lstm_layer(p, L, n);
    else
      gru_layer(p, L, n);
  }
  // Each branch's last h side by side: the head's input.
  for (int b = 0; b < n; b++) {
    float *dst = p->concat + (size_t)b * p->concatStride;
    for (int i = 0; i < p->nBranch; i++) {
      const int *c = p->copies + 3 * i;
      memcpy(dst + c[2], p->sptr[b] + c[0], sizeof(float) * c[1]);
    }
  }
  const float *src = p->concat;
  int srcStride = p->concatStride;
  for (int i = 0; i < p->nHead; i++) {
    float *dst = p->hbuf[i & 1];
    dense(&p->heads[i], src, srcStride, dst, p->headStride, n);
    src = dst;
    srcStride = p->headStride;
  }
  for (int b = 0; b < n; b++) memcpy(p->out + (size_t)b * p->O, src + (size_t)b * srcStride, sizeof(float) * p->O);
}

#endif // CS_X86

// --- Node-API glue ---

#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) {                                                                                           \
      napi_throw_error(env, NULL, "cellstream native kernel: " #call " failed");                                      \
      return NULL;                                                                                                     \
    }                                                                                                                  \
  } while (0)

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, length, data, &ab, &off) != napi_ok) return 0;
  return t == want;
}

static napi_value js_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  CHECK(napi_get_boolean(env, cpu_ok(), &r));
  return r;
}

static void finalize_plan(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  plan_free((Plan *)data);
}

// Copies a packed weight array of exactly `want` floats into aligned memory.
static float *copy_weights(napi_env env, napi_value arr, uint32_t index, size_t want) {
  napi_value v;
  if (napi_get_element(env, arr, index, &v) != napi_ok) return NULL;
  float *data;
  size_t length;
  if (!typed(env, v, napi_float32_array, (void **)&data, &length) || length != want) return NULL;
  float *w = alloc32(want);
  if (w) memcpy(w, data, want * sizeof(float));
  return w;
}

#define FAIL(msg)                                                                                                      \
  do {                                                                                                                 \
    plan_free(p);                                                                                                      \
    napi_throw_error(env, NULL, "cellstream native kernel: " msg);                                                    \
    return NULL;                                                                                                       \
  } while (0)

/**
 * create(desc: Int32Array, weights: Float32Array[], slab: Float32Array, slots: Int32Array,
 *        out: Float32Array, inputs: Float32Array[]) → plan handle.
 * desc: nLayers, nHead, nInputs, nBranch, S, O, chunk, capacity, then the input sizes, then per
 * layer kind, I, H, xInput, xState, hOff, cOff, per head K, O, act, per branch hOff, H, concatOff.
 */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plan *p = calloc(1, sizeof(Plan));
  if (!p) FAIL("out of memory");
  if (argc < 6) FAIL("create takes 6 arguments");
  int32_t *d;
  size_t dn;
  if (!typed(env, argv[0], napi_int32_array, (void **)&d, &dn) || dn < 8) FAIL("bad descriptor");
  p->nLayers = d[0];
  p->nHead = d[1];
  p->nInputs = d[2];
  p->nBranch = d[3];
  p->S = d[4];
  p->O = d[5];
  p->chunk = d[6];
  p->capacity = d[7];
  if (p->nLayers < 1 || p->nHead < 0 || p->nInputs < 1 || p->nBranch < 1 || p->S < 1 || p->O < 1 ||
      p->chunk < 1 || p->capacity < 1)
    FAIL("bad descriptor header");
  if (dn != (size_t)(8 + p->nInputs + 7 * p->nLayers + 3 * p->nHead + 3 * p->nBranch)) FAIL("bad descriptor length");
  const int32_t *q = d + 8;
  p->inputSizes = calloc(p->nInputs, sizeof(int));
  p->layers = calloc(p->nLayers, sizeof(Layer));
  p->heads = calloc(p->nHead ? p->nHead : 1, sizeof(Head));
  p->copies = calloc(3 * p->nBranch, sizeof(int));
  p->inputs = calloc(p->nInputs, sizeof(float *));
  if (!p->inputSizes || !p->layers || !p->heads || !p->copies || !p->inputs) FAIL("out of memory");
  for (int i = 0; i < p->nInputs; i++) p->inputSizes[i] = *q++;
  int maxG = 1;
  for (int l = 0; l < p->nLayers; l++) {
    Layer *L = &p->layers[l];
    L->kind = *q++;
    L->I = *q++;
    L->H = *q++;
    L->xInput = *q++;
    L->xState = *q++;
    L->hOff = *q++;
    L->cOff = *q++;
    L->G = (L->H + 7) / 8;
    L->K = L->I + L->H;
    if ((L->kind != KIND_LSTM && L->kind != KIND_GRU) || L->I < 1 || L->H < 1) FAIL("bad layer");
    if (L->xState < 0 && (L->xInput < 0 || L->xInput >= p->nInputs || p->inputSizes[L->xInput] != L->I))
      FAIL("bad layer input");
    if (L->xState + (L->xState < 0 ? 0 : L->I) > p->S || L->hOff < 0 || L->hOff + L->H > p->S) FAIL("bad layer offsets");
    if (L->kind == KIND_LSTM && (L->cOff < 0 || L->cOff + L->H > p->S)) FAIL("bad layer offsets");
    const int NG = L->kind == KIND_LSTM ? 4 : 3;
    L->w = copy_weights(env, argv[1], 2 * l, (size_t)L->G * L->K * NG * 8);
    L->b = copy_weights(env, argv[1], 2 * l + 1, (size_t)L->G * 32);
    if (!L->w || !L->b) FAIL("layer weights of the wrong size");
    if (L->G > maxG) maxG = L->G;
  }
  int maxOut = 1;
  for (int i = 0; i < p->nHead; i++) {
    Head *h = &p->heads[i];
    h->K = *q++;
    h->O = *q++;
    h->act = *q++;
    h->G = (h->O + 7) / 8;
    if (h->K < 1 || h->O < 1) FAIL("bad head");
    h->w = copy_weights(env, argv[1], 2 * p->nLayers + 2 * i, (size_t)h->G * h->K * 8);
    h->b = copy_weights(env, argv[1], 2 * p->nLayers + 2 * i + 1, (size_t)h->G * 8);
    if (!h->w || !h->b) FAIL("head weights of the wrong size");
    if (h->G * 8 > maxOut) maxOut = h->G * 8;
  }
  int concatWidth = 0;
  for (int i = 0; i < p->nBranch; i++) {
    int *c = p->copies + 3 * i;
    c[0] = *q++;
    c[1] = *q++;
    c[2] = *q++;
    if (c[0] < 0 || c[1] < 1 || c[0] + c[1] > p->S || c[2] != concatWidth) FAIL("bad branch");
    concatWidth += c[1];
  }
  if (p->nHead > 0 ? p->heads[0].K != concatWidth || p->heads[p->nHead - 1].O != p->O : p->O != concatWidth)
    FAIL("head sizes do not chain");
  for (int i = 1; i < p->nHead; i++)
    if (p->heads[i].K != p->heads[i - 1].O) FAIL("head sizes do not chain");
  p->maxG = maxG;
  p->concatStride = (concatWidth + 7) & ~7;
  p->headStride = maxOut;

  float *slab, *out;
  int32_t *slots;
  size_t n;
  if (!typed(env, argv[2], napi_float32_array, (void **)&slab, &n) || n < (size_t)p->capacity * p->S) FAIL("bad slab");
  if (!typed(env, argv[3], napi_int32_array, (void **)&slots, &n) || n < (size_t)p->chunk) FAIL("bad slot table");
  if (!typed(env, argv[4], napi_float32_array, (void **)&out, &n) || n < (size_t)p->chunk * p->O) FAIL("bad output buffer");
  p->slab = slab;
  p->slots = slots;
  p->out = out;
  for (int i = 0; i < p->nInputs; i++) {
    napi_value v;
    float *x;
    if (napi_get_element(env, argv[5], i, &v) != napi_ok || !typed(env, v, napi_float32_array, (void **)&x, &n) ||
        n < (size_t)p->chunk * p->inputSizes[i])
      FAIL("bad input buffer");
    p->inputs[i] = x;
  }
  p->sptr = calloc(p->chunk, sizeof(float *));
  p->pre = alloc32((size_t)p->chunk * maxG * 32);
  p->concat = alloc32((size_t)p->chunk * p->concatStride);
  p->hbuf[0] = alloc32((size_t)p->chunk * p->headStride);
  p->hbuf[1] = alloc32((size_t)p->chunk * p->headStride);
  if (!p->sptr || !p->pre || !p->concat || !p->hbuf[0] || !p->hbuf[1]) FAIL("out of memory");

  napi_value handle;
  if (napi_create_external(env, p, finalize_plan, NULL, &handle) != napi_ok) FAIL("napi_create_external failed");
  return handle;
}

static Plan *get_plan(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return (Plan *)data;
}

/**
 * run(plan, n): one step for the n keys whose slots are slots[0..n), states in the slab.
 * run(plan, n, states): one step for n keys whose states lie back to back in `states`.
 */
static napi_value js_run(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plan *p = argc >= 2 ? get_plan(env, argv[0]) : NULL;
  int32_t n = 0;
  if (!p || napi_get_value_int32(env, argv[1], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "run(plan, n[, states])");
    return NULL;
  }
  if (n < 0 || n > p->chunk) {
    napi_throw_range_error(env, NULL, "cellstream native kernel: more keys than the plan's chunk");
    return NULL;
  }
  if (argc >= 3) {
    float *states;
    size_t length;
    if (!typed(env, argv[2], napi_float32_array, (void **)&states, &length) || length < (size_t)n * p->S) {
      napi_throw_range_error(env, NULL, "cellstream native kernel: the states are fewer than n keys'");
      return NULL;
    }
    for (int b = 0; b < n; b++) p->sptr[b] = states + (size_t)b * p->S;
  } else {
    for (int b = 0; b < n; b++) {
      int32_t s = p->slots[b];
      if (s < 0 || s >= p->capacity) {
        napi_throw_range_error(env, NULL, "cellstream native kernel: slot outside the session");
        return NULL;
      }
      p->sptr[b] = p->slab + (size_t)s * p->S;
    }
  }
#ifdef CS_X86
  if (cpu_ok()) {
    run_avx2(p, n);
    return NULL;
  }
#endif
  napi_throw_error(env, NULL, "cellstream native kernel: this CPU lacks AVX2 and FMA");
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"available", NULL, js_available, NULL, NULL, NULL, napi_default, NULL},
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"run", NULL, js_run, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
