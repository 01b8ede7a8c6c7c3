// cellstream's native step kernel: a Node-API addon in C11 with x86-64 AVX2 + FMA code paths,
// and an AVX-512 tile chosen at run time where the CPU has AVX-512F.
// Built by scripts/build-native.mjs (no node-gyp); loaded by src/model/kernels/native/.
//
// The JS side packs each layer's weights once per model, gate-interleaved for 8 hidden units at
// a time (one ymm register per gate) in panels of 4 such vectors (one zmm pair), describes the model in an Int32Array, and owns the buffers this code reads
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
#define _POSIX_C_SOURCE 200112L // clock_gettime under -std=c11
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#define CS_X86 1
#include <immintrin.h>
#define TGT __attribute__((target("avx2,fma")))
#endif

enum { KIND_LSTM = 0, KIND_GRU = 1 };
// Layer variant flags (the descriptor's per-layer flags, shared with pack.ts). LSTM: peepholes
// (ONNX P, Keras' PeepholeLSTMCell), and the coupled input and forget gates (ONNX input_forget:
// f = 1 − i). GRU: the reset gate applied to h_{t−1} before the recurrent product (ONNX
// linear_before_reset=0, Keras reset_after=False) instead of after it.
enum { F_PEEPHOLE = 1, F_COUPLED = 2, F_RESET_BEFORE = 4 };
// What a product's rows multiply, per key: the layer's x, h_{t−1}, or r ⊙ h_{t−1} (rh scratch).
enum { SRC_X = 0, SRC_H = 1, SRC_RH = 2 };
// Head activation codes, shared with src/model/kernels/native/pack.ts.
enum { A_SIGMOID = 0, A_TANH = 1, A_RELU = 2, A_LINEAR = 3, A_SOFTMAX = 11 };

// Terms per partial sum: each block is summed from zero and then added to the running total,
// which roughly halves the worst float32 error at K = 80 against one long chain (the wasm
// kernel measured the same), for one add per accumulator per 16 terms.
#define BLOCK 16

// One range of rows of a product: `len` rows of NP panels of 4 weight vectors (module comment
// above tile()), multiplying each key's x, h or r ⊙ h (SRC_*).
typedef struct {
  const float *w; // row 0 of panel 0 (inside the layer's weights)
  size_t panelF;  // floats from one panel to the next
  int NP, len, src;
  int *slot; // vector v's total slot (pre_slot())
  int *dst;  // the same as float offsets from a key's first total, for runs of dstN keys
} Range;

typedef struct {
  int kind, I, H, G, K;
  int flags; // F_PEEPHOLE | F_COUPLED (LSTM), F_RESET_BEFORE (GRU)
  int NS;    // blocks of 4 total slots (8 floats each) per key in pre; see pre_slot()
  // LSTM and GRU with the reset after: the input rows then the recurrent rows of one set of
  // panels. GRU with the reset before: x·[z r n], h·[z r], then (r ⊙ h)·n once r is known.
  Range rg[3];
  int nRanges;
  int dstN;
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
  int S, O, chunk, capacity, maxNS, concatStride, headStride;
  int rhStride; // floats of r ⊙ h_{t−1} per key in rh (the widest reset-before GRU's 8·G)
  int avx2Only; // create()'s isa argument: keep to the AVX2 tiles even where AVX-512F runs
  int n;        // keys in the current run
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
  float *pre, *concat, *hbuf[2], *rh;
} Plan;

static void *alloc32(size_t floats) {
  // Slack after every region so that a full 8-lane load at the last group stays inside it; 64-byte
  // aligned so that the AVX-512 tile's zmm loads of a panel row are aligned too.
  size_t bytes = ((floats + 16) * sizeof(float) + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

static void plan_free(Plan *p) {
  if (!p) return;
  if (p->layers)
    for (int l = 0; l < p->nLayers; l++) {
      free(p->layers[l].w);
      free(p->layers[l].b);
      for (int r = 0; r < 3; r++) {
        free(p->layers[l].rg[r].slot);
        free(p->layers[l].rg[r].dst);
      }
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
  free(p->rh);
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

// --- Dot products: a blocked matrix product, pre[keys × vectors] += [x | h] · W. ---
//
// A layer's weights are NV vectors of 8 gate columns (LSTM: i, f, g, o per 8 units; GRU: z, r,
// n per 8 units), packed in panels of 4 vectors: panel p holds K rows of 32 floats, vectors
// 4p..4p+3, row k from W (k < I) or R (k ≥ I). Each range of rows (Range: the input rows, the
// recurrent rows) has its own table of where vector v's total lands (slot[v]; see pre_slot()):
// they differ only for the GRU's candidate, whose two sums the reset gate multiplies apart. A
// GRU with the reset before the product has three ranges, each with panels of its own rows
// only: x·[z r n], h·[z r], and (r ⊙ h)·n, the last run once r is known (gru_before_layer()).
//
// Register blocking: a tile of MR keys × NV vectors keeps MR·NV accumulators in registers while
// one k row of weights (NV loads) meets MR broadcasts of the keys' x or h. AVX2 has 16 ymm
// registers: 6 keys × 2 vectors (12 accumulators, 2 weights, 1 broadcast) does 12 FMAs for 8
// loads; a key left alone takes 8 vectors (2 panels) so that 8 independent chains hide the FMA
// latency. With AVX-512 (32 registers) the main tile is 12 keys × a whole panel (2 zmm).
//
// Cache blocking: keys in blocks of KEY_BLOCK; within a block the k loop runs in chunks of KC
// rows, panels inside, key tiles innermost, so a panel's chunk (KC × 128 B = 16 KiB) stays in L1
// while the block's tiles pass it, and the block's chunk of x/h (≤ 96 × KC × 4 B = 48 KiB) stays
// in L2 across the panels; a tile's totals are touched once per 16 rows.
//
// Batch independence holds tile by tile: every accumulator, in every tile shape and either ISA,
// starts at zero for each block of BLOCK rows, takes the rows' FMAs in k order and is then added
// to its total; blocks and chunks are visited in k order. The lanes of a zmm do exactly what
// those of a ymm do, so the AVX-512 tiles give the AVX2 tiles' bits.
#define PW 32
#ifndef KC
#define KC 128
#endif

static inline const float *x_of(const Plan *p, const Layer *L, int b);
static inline const float *h_of(const Plan *p, const Layer *L, int b);

#define FORCE __attribute__((always_inline))

// MR keys × NV vectors over rows [k0, k1) of one range (rows relative to the range's start,
// k0 a multiple of BLOCK). Vector j is at (j < 4 ? wA : wB) + 8·(j mod 4) in a row; a[i] is
// key i's x or h; prow[i] + dst[j] is where its total for vector j lies.
TGT static inline FORCE void tile(const int MR, const int NV, const float *wA, const float *wB, int k0, int k1,
                                  const float *const *a, float *const *prow, const int *dst) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    const int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    V acc[6][8];
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NV; j++) acc[i][j] = ZERO;
    for (int k = kb; k < ke; k++) {
      V wv[8];
      for (int j = 0; j < NV; j++) {
        wv[j] = LD((j < 4 ? wA : wB) + (size_t)k * PW + 8 * (j & 3));
        // In a register once, for the tile's keys to share (gcc would fold the load into each
        // key's FMA); a lone key's weights are used once, and forcing 8 of them into registers
        // beside its 8 accumulators spilled one to the stack: a store-to-load chain per row.
        if (MR > 1) REG(wv[j]);
      }
      for (int i = 0; i < MR; i++) {
        const V s = BC(a[i] + k);
        for (int j = 0; j < NV; j++) acc[i][j] = FMA(wv[j], s, acc[i][j]);
      }
    }
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NV; j++) {
        float *t = prow[i] + dst[j];
        ST(t, ADD(LD(t), acc[i][j]));
      }
  }
}

TGT static void tile_6x2(const float *w, int k0, int k1, const float *const *a, float *const *prow, const int *dst) {
  tile(6, 2, w, NULL, k0, k1, a, prow, dst);
}
TGT static void tile_rx2(int r, const float *w, int k0, int k1, const float *const *a, float *const *prow,
                         const int *dst) {
  switch (r) {
    case 3: tile(3, 2, w, NULL, k0, k1, a, prow, dst); break;
    case 4: tile(4, 2, w, NULL, k0, k1, a, prow, dst); break;
    case 5: tile(5, 2, w, NULL, k0, k1, a, prow, dst); break;
    default: break;
  }
}
TGT static void tile_2x4(const float *w, int k0, int k1, const float *const *a, float *const *prow, const int *dst) {
  tile(2, 4, w, NULL, k0, k1, a, prow, dst);
}
TGT static void tile_1x8(const float *wA, const float *wB, int k0, int k1, const float *const *a, float *const *prow,
                         const int *dst) {
  tile(1, 8, wA, wB, k0, k1, a, prow, dst);
}
TGT static void tile_1x4(const float *w, int k0, int k1, const float *const *a, float *const *prow, const int *dst) {
  tile(1, 4, w, NULL, k0, k1, a, prow, dst);
}

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 7 || defined(__clang__)
#define CS_AVX512 1
#define TGT512 __attribute__((target("avx512f,avx2,fma")))
// 12 keys × one whole panel: 24 zmm accumulators, 2 weight loads and 12 broadcasts a row. Each
// accumulator's halves are the AVX2 tile's two vectors, added to their totals one ymm at a time
// (the GRU's vectors in one panel need not have adjacent totals).
TGT512 static void tile512_12(const float *w, int k0, int k1, const float *const *a, float *const *prow,
                              const int *dst) {
  for (int kb = k0; kb < k1; kb += BLOCK) {
    const int ke = kb + BLOCK < k1 ? kb + BLOCK : k1;
    __m512 acc[12][2];
    for (int i = 0; i < 12; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = kb; k < ke; k++) {
      __m512 w0 = _mm512_load_ps(w + (size_t)k * PW), w1 = _mm512_load_ps(w + (size_t)k * PW + 16);
      __asm__("" : "+v"(w0));
      __asm__("" : "+v"(w1));
      for (int i = 0; i < 12; i++) {
        const __m512 s = _mm512_set1_ps(a[i][k]);
        acc[i][0] = _mm512_fmadd_ps(w0, s, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(w1, s, acc[i][1]);
      }
    }
    for (int i = 0; i < 12; i++)
      for (int j = 0; j < 2; j++) {
        const __m256 lo = _mm512_castps512_ps256(acc[i][j]);
        const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i][j]), 1));
        float *t0 = prow[i] + dst[2 * j], *t1 = prow[i] + dst[2 * j + 1];
        _mm256_store_ps(t0, _mm256_add_ps(_mm256_load_ps(t0), lo));
        _mm256_store_ps(t1, _mm256_add_ps(_mm256_load_ps(t1), hi));
      }
  }
}
#endif

// Whether the AVX-512 tile runs: only when asked for (CELLSTREAM_NATIVE_ISA=avx512) on a CPU with
// AVX-512F. Opt-in because the path has not yet run on such a CPU in our CI; the AVX2 tiles are
// the default everywhere until it has.
static int use512 = -1;
static int isa512(void) {
#if defined(CS_AVX512)
  if (use512 < 0) {
    const char *env = getenv("CELLSTREAM_NATIVE_ISA");
    __builtin_cpu_init();
    use512 = __builtin_cpu_supports("avx512f") && env && strcmp(env, "avx512") == 0;
  }
  return use512;
#else
  return 0;
#endif
}

// Key b's row for a range's source: its x, h_{t−1}, or r ⊙ h_{t−1}.
static inline const float *src_of(const Plan *p, const Layer *L, int src, int b) {
  return src == SRC_X ? x_of(p, L, b) : src == SRC_H ? h_of(p, L, b) : p->rh + (size_t)b * p->rhStride;
}

// Key tile b's pointers: its keys' rows for the range and their pre rows.
static inline void tile_keys(const Plan *p, const Layer *L, int src, int b, int r, const float **a, float **prow) {
  for (int i = 0; i < r; i++) {
    a[i] = src_of(p, L, src, b + i);
    prow[i] = p->pre + (size_t)(b + i) * 32;
  }
}

// One chunk [k0, k1) of one range for keys [b0, n): panels outer, key tiles inner, so the
// panel's chunk stays in L1 while the block's keys pass it.
TGT static void dots_chunk(const Plan *p, const Layer *L, const Range *R, int b0, int n, int k0, int k1) {
  const int *dst = R->dst;
  const size_t panelF = R->panelF;
  const int range = R->src;
  const float *a[12];
  float *prow[12];
  // Keys [0, n512) in AVX-512 tiles of 12, then tiles of 6 and one of the rest; a lone last key
  // goes two panels at a time after the others.
  const int n512 = isa512() && !p->avx2Only ? b0 + (n - b0) / 12 * 12 : b0;
  const int lone = (n - n512) % 6 == 1 ? 1 : 0;
  const int nTiles = n - lone;
  for (int q = 0; q < R->NP; q++) {
    const float *w = R->w + q * panelF;
    const int *d = dst + 4 * q;
    int b = b0;
#if defined(CS_AVX512)
    for (; b < n512; b += 12) {
      tile_keys(p, L, range, b, 12, a, prow);
      tile512_12(w, k0, k1, a, prow, d);
    }
#endif
    for (; b < nTiles;) {
      const int r = nTiles - b < 6 ? nTiles - b : 6;
      tile_keys(p, L, range, b, r, a, prow);
      if (r == 6) {
        tile_6x2(w, k0, k1, a, prow, d);
        tile_6x2(w + 16, k0, k1, a, prow, d + 2);
      } else if (r == 2) {
        tile_2x4(w, k0, k1, a, prow, d);
      } else {
        tile_rx2(r, w, k0, k1, a, prow, d);
        tile_rx2(r, w + 16, k0, k1, a, prow, d + 2);
      }
      b += r;
    }
  }
  if (!lone) return;
  tile_keys(p, L, range, n - 1, 1, a, prow);
  int q = 0;
  for (; q + 1 < R->NP; q += 2) {
    const float *w = R->w + q * panelF;
    tile_1x8(w, w + panelF, k0, k1, a, prow, dst + 4 * q);
  }
  if (q < R->NP) tile_1x4(R->w + q * panelF, k0, k1, a, prow, dst + 4 * q);
}

// A key stepped alone: two panels at a time over the whole of each range, its running totals in
// registers (or spilled, touched once per block) rather than read and written back per block as
// the tiles do, and no chunking of k: through the tiles the per-event step ran 10–25 % slower
// (best-of runs, H 64 to 512, against the kernel before the blocked product). Each accumulator
// gets the tiles' sequence exactly (zero, a block's FMAs in k order, added to the total), so the
// bits are a batch's.
TGT static inline FORCE void lone_panels(const int NV, const Range *R, int q, const float *a, float *prow) {
  const int len = R->len;
  const int *dst = R->dst + 4 * q;
  const float *wA = R->w + q * R->panelF, *wB = wA + R->panelF;
  V t[8];
  for (int j = 0; j < NV; j++) t[j] = LD(prow + dst[j]);
  for (int kb = 0; kb < len; kb += BLOCK) {
    const int ke = kb + BLOCK < len ? kb + BLOCK : len;
    V acc[8];
    for (int j = 0; j < NV; j++) acc[j] = ZERO;
    for (int k = kb; k < ke; k++) {
      const V s = BC(a + k);
      for (int j = 0; j < NV; j++) acc[j] = FMA(LD((j < 4 ? wA : wB) + (size_t)k * PW + 8 * (j & 3)), s, acc[j]);
    }
    for (int j = 0; j < NV; j++) t[j] = ADD(t[j], acc[j]);
  }
  for (int j = 0; j < NV; j++) ST(prow + dst[j], t[j]);
}

// Ranges [r0, r1) for the lone key. Where they share their panels (the input and recurrent rows
// of one set), a panel pair's input rows then its recurrent rows; otherwise range by range, since
// a total's ranges must come in range order, as the tiles add them, and the reset-before GRU's
// z and r vectors lie in lower panels of its h·[z r] range than of its x·[z r n] range.
TGT static void lone_dots(const Plan *p, const Layer *L, int r0, int r1) {
  float *prow = p->pre;
  if (r1 - r0 == 2 && L->rg[r0].panelF == (size_t)L->K * PW) {
    const Range *X = &L->rg[r0], *Hr = &L->rg[r0 + 1];
    const float *x = src_of(p, L, X->src, 0), *h = src_of(p, L, Hr->src, 0);
    int q = 0;
    for (; q + 1 < X->NP; q += 2) {
      lone_panels(8, X, q, x, prow);
      lone_panels(8, Hr, q, h, prow);
    }
    if (q < X->NP) {
      lone_panels(4, X, q, x, prow);
      lone_panels(4, Hr, q, h, prow);
    }
    return;
  }
  for (int r = r0; r < r1; r++) {
    const Range *R = &L->rg[r];
    const float *a = src_of(p, L, R->src, 0);
    int q = 0;
    for (; q + 1 < R->NP; q += 2) lone_panels(8, R, q, a, prow);
    if (q < R->NP) lone_panels(4, R, q, a, prow);
  }
}

// Keys per block (a multiple of the tiles' 12 and 6): the block's x/h pages stay in the
// first-level TLB and its chunk of x/h in L2 while every panel passes, and the weights stream
// once per block. With key-major totals, 256 keys in one block ran at a third of the speed of 64
// at H=256. 96 was picked, not tuned: small enough for the TLB, half as many weight passes as 48.
#ifndef KEY_BLOCK
#define KEY_BLOCK 96
#endif

// Every key's totals of ranges [r0, r1) into pre (biases not yet added; pre is cleared with
// range 0): key block by key block, range by range, each chunk by chunk in its own blocks of
// BLOCK rows.
TGT static void layer_dots(const Plan *p, const Layer *L, int n, int r0, int r1) {
  if (r0 == 0) memset(p->pre, 0, sizeof(float) * 32 * (size_t)L->NS * n);
  if (L->dstN != n) {
    Layer *M = (Layer *)L; // the offset tables are scratch, rebuilt when the run's size changes
    for (int r = 0; r < L->nRanges; r++)
      for (int v = 0; v < 4 * L->rg[r].NP; v++) {
        const int s = L->rg[r].slot[v];
        M->rg[r].dst[v] = ((s >> 2) * n) * 32 + (s & 3) * 8;
      }
    M->dstN = n;
  }
  if (n == 1) {
    lone_dots(p, L, r0, r1);
    return;
  }
  for (int b0 = 0; b0 < n; b0 += KEY_BLOCK) {
    const int b1 = b0 + KEY_BLOCK < n ? b0 + KEY_BLOCK : n;
    for (int r = r0; r < r1; r++) {
      const Range *R = &L->rg[r];
      for (int k0 = 0; k0 < R->len; k0 += KC) dots_chunk(p, L, R, b0, b1, k0, k0 + KC < R->len ? k0 + KC : R->len);
    }
  }
}

// pre holds every total in slots of 8 floats, 4 slots to a block, block-major: slot s of key b is
// at ((s / 4) · n + b) · 32 + (s mod 4) · 8 for a run of n keys. A panel's totals for consecutive
// keys are then consecutive (128 bytes a key), which the hardware prefetcher follows (key-major
// rows of a whole layer put each key's 128 bytes on its own page), and a lone key's are all
// together. Slot v is vector v's; a GRU's candidate has a
// second slot for its recurrent sum, after the panels' (NP·4 + g for group g).
static inline float *pre_slot(const Plan *p, int b, int slot) {
  return p->pre + ((size_t)(slot >> 2) * p->n + b) * 32 + (slot & 3) * 8;
}

TGT static inline void lstm_finish(const Plan *p, const Layer *L, int b, int g) {
  float *s = p->sptr[b];
  const float *q = pre_slot(p, b, 4 * g), *bias = L->b + (size_t)g * 32;
  const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
  float *cp = s + L->cOff + 8 * g, *hp = s + L->hOff + 8 * g;
  V it = vsigmoid(ADD(LD(q), LD(bias))), ft = vsigmoid(ADD(LD(q + 8), LD(bias + 8)));
  V gt = vtanh(ADD(LD(q + 16), LD(bias + 16))), ot = vsigmoid(ADD(LD(q + 24), LD(bias + 24)));
  V ct = FMA(ft, load_n(cp, count), MUL(it, gt));
  store_n(cp, ct, count);
  store_n(hp, MUL(ot, vtanh(ct)), count);
}

// The LSTM variants: peepholes (i and f see C_{t−1}, o sees C_t; 24 floats per group after the
// biases: p_i, p_f, p_o) and coupled gates (f = 1 − i, its own pre-activation unused).
TGT static inline void lstm_finish_variant(const Plan *p, const Layer *L, int b, int g) {
  float *s = p->sptr[b];
  const float *q = pre_slot(p, b, 4 * g), *bias = L->b + (size_t)g * 32;
  const float *peep = L->b + (size_t)L->G * 32 + (size_t)g * 24;
  const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
  const int hasPeep = L->flags & F_PEEPHOLE;
  float *cp = s + L->cOff + 8 * g, *hp = s + L->hOff + 8 * g;
  const V cPrev = load_n(cp, count);
  V ai = ADD(LD(q), LD(bias));
  if (hasPeep) ai = FMA(LD(peep), cPrev, ai);
  const V it = vsigmoid(ai);
  V ft;
  if (L->flags & F_COUPLED) {
    ft = _mm256_sub_ps(SET(1.0f), it);
  } else {
    V af = ADD(LD(q + 8), LD(bias + 8));
    if (hasPeep) af = FMA(LD(peep + 8), cPrev, af);
    ft = vsigmoid(af);
  }
  const V gt = vtanh(ADD(LD(q + 16), LD(bias + 16)));
  const V ct = FMA(ft, cPrev, MUL(it, gt));
  V ao = ADD(LD(q + 24), LD(bias + 24));
  if (hasPeep) ao = FMA(LD(peep + 16), ct, ao);
  const V ot = vsigmoid(ao);
  store_n(cp, ct, count);
  store_n(hp, MUL(ot, vtanh(ct)), count);
}

// Where key b's x (the input, or the layer below's fresh h) and h_{t−1} are: read in place, so a
// layer gathers nothing. Every h_{t−1} is read by the dot products before any is overwritten.
static inline const float *x_of(const Plan *p, const Layer *L, int b) {
  return L->xState >= 0 ? p->sptr[b] + L->xState : p->inputs[L->xInput] + (size_t)b * L->I;
}

static inline const float *h_of(const Plan *p, const Layer *L, int b) { return p->sptr[b] + L->hOff; }

// Activations after all the dot products, not fused into them: a group's activations are a
// serial chain (exp polynomial, division) that could overlap nothing next to the following
// group's long dot loop; here the iterations are independent and overlap each other.
TGT static void lstm_layer(const Plan *p, const Layer *L, int n) {
  layer_dots(p, L, n, 0, 2);
  if (L->flags)
    for (int b = 0; b < n; b++)
      for (int g = 0; g < L->G; g++) lstm_finish_variant(p, L, b, g);
  else
    for (int b = 0; b < n; b++)
      for (int g = 0; g < L->G; g++) lstm_finish(p, L, b, g);
}

// GRU with the reset gate applied after the recurrent product (linear_before_reset,
// Keras reset_after=True): candidate = tanh(W_n·x + bW_n + r ⊙ (R_n·h + bR_n)).
TGT static void gru_layer(const Plan *p, const Layer *L, int n) {
  layer_dots(p, L, n, 0, 2);
  for (int b = 0; b < n; b++) {
    float *hs = p->sptr[b] + L->hOff;
    for (int g = 0; g < L->G; g++) {
      const float *bias = L->b + (size_t)g * 32;
      const float *qz = pre_slot(p, b, 3 * g), *qr = pre_slot(p, b, 3 * g + 1), *qx = pre_slot(p, b, 3 * g + 2);
      const float *qh = pre_slot(p, b, 4 * L->rg[0].NP + g);
      const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
      V z = vsigmoid(ADD(LD(qz), LD(bias))), r = vsigmoid(ADD(LD(qr), LD(bias + 8)));
      V cand = vtanh(FMA(r, ADD(LD(qh), LD(bias + 24)), ADD(LD(qx), LD(bias + 16))));
      V h = load_n(hs + 8 * g, count); // h_{t−1}, overwritten just below
      // (1 − z)·cand + z·h, as the reference writes it.
      store_n(hs + 8 * g, ADD(MUL(_mm256_sub_ps(SET(1.0f), z), cand), MUL(z, h)), count);
    }
  }
}

// GRU with the reset gate applied before the recurrent product (ONNX linear_before_reset=0,
// Keras reset_after=False): candidate = tanh(W_n·x + bW_n + R_n·(r ⊙ h) + bR_n). The first
// product gives z, r and the candidate's input sum; r ⊙ h_{t−1} goes to rh for every key; the
// second product (rh·R_n, the same tiles) gives the candidate's recurrent sum.
TGT static void gru_before_layer(const Plan *p, const Layer *L, int n) {
  layer_dots(p, L, n, 0, 2);
  for (int b = 0; b < n; b++) {
    const float *hs = p->sptr[b] + L->hOff;
    float *rh = p->rh + (size_t)b * p->rhStride;
    for (int g = 0; g < L->G; g++) {
      const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
      const V r = vsigmoid(ADD(LD(pre_slot(p, b, 3 * g + 1)), LD(L->b + (size_t)g * 32 + 8)));
      // Lanes past H are zero (masked load) and never read: the product stops at row H.
      ST(rh + 8 * g, MUL(r, load_n(hs + 8 * g, count)));
    }
  }
  layer_dots(p, L, n, 2, 3);
  const int nh = 4 * L->rg[0].NP; // the candidate's recurrent sums: slot nh + g
  for (int b = 0; b < n; b++) {
    float *hs = p->sptr[b] + L->hOff;
    for (int g = 0; g < L->G; g++) {
      const float *bias = L->b + (size_t)g * 32;
      const int count = L->H - 8 * g < 8 ? L->H - 8 * g : 8;
      const V z = vsigmoid(ADD(LD(pre_slot(p, b, 3 * g)), LD(bias)));
      const V cand = vtanh(
          ADD(ADD(LD(pre_slot(p, b, 3 * g + 2)), LD(bias + 16)), ADD(LD(pre_slot(p, b, nh + g)), LD(bias + 24))));
      const V h = load_n(hs + 8 * g, count);
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
    else if (L->flags & F_RESET_BEFORE)
      gru_before_layer(p, L, n);
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

// --- The machine's FMA peak, for the bench's "% of peak" ---
//
// Independent multiply-add chains, more of them than the FMA units × their latency, with no
// loads: one core's ceiling for the vector width. Each chain is x·m + c with m just below 1, so
// the values neither overflow nor go subnormal (which would slow some CPUs down).
#define PEAK_CHAINS 12
TGT static double fma_count_avx2(long rounds, float *sink) {
  V acc[PEAK_CHAINS];
  for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = SET(1.0f + (float)i);
  const V m = SET(0.9999f), c = SET(0.0001f);
  for (long r = 0; r < rounds; r++)
    for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = FMA(acc[i], m, c);
  V t = acc[0];
  for (int i = 1; i < PEAK_CHAINS; i++) t = ADD(t, acc[i]);
  ST(sink, t);
  return (double)rounds * PEAK_CHAINS * 8 * 2;
}

#if defined(CS_AVX512)
#define PEAK_CHAINS_512 24
TGT512 static double fma_count_512(long rounds, float *sink) {
  __m512 acc[PEAK_CHAINS_512];
  for (int i = 0; i < PEAK_CHAINS_512; i++) acc[i] = _mm512_set1_ps(1.0f + (float)i);
  const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(0.0001f);
  for (long r = 0; r < rounds; r++)
    for (int i = 0; i < PEAK_CHAINS_512; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  __m512 t = acc[0];
  for (int i = 1; i < PEAK_CHAINS_512; i++) t = _mm512_add_ps(t, acc[i]);
  _mm512_storeu_ps(sink, t);
  return (double)rounds * PEAK_CHAINS_512 * 16 * 2;
}
#endif

// This thread's CPU time: on a shared machine the time other processes hold the core is not the
// FMA units' limit, and wall time would count it.
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Best of several short runs in GFLOP/s (the best, because on a shared core a run only ever
// loses time to other processes and their cache misses), over `ms` milliseconds of CPU in all, with the widest vectors the
// kernel uses on this CPU.
static double fma_peak(double ms) {
  static float sink[16] __attribute__((aligned(64)));
  const int trials = 10;
  double best = 0;
  long rounds = 1000;
  for (int t = 0; t < trials; t++) {
    double flops, t0, dt;
    for (;;) {
      t0 = now_s();
#if defined(CS_AVX512)
      flops = isa512() ? fma_count_512(rounds, sink) : fma_count_avx2(rounds, sink);
#else
      flops = fma_count_avx2(rounds, sink);
#endif
      dt = now_s() - t0;
      // Grow the run until it lasts its share of the budget, so the clock's resolution is noise.
      if (dt * 1000 >= ms / trials || rounds > (1L << 40)) break;
      rounds *= 2;
    }
    if (flops / dt / 1e9 > best) best = flops / dt / 1e9;
  }
  return best;
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

// The widest code path run() takes on this CPU: "avx512", "avx2", or "none".
static napi_value js_isa(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
#ifdef CS_X86
  const char *name = !cpu_ok() ? "none" : isa512() ? "avx512" : "avx2";
#else
  const char *name = "none";
#endif
  CHECK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &r));
  return r;
}

// fmaPeak(ms) → GFLOP/s of one core at the widest vectors run() uses (0 without AVX2 + FMA).
static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double ms = 200;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1 && napi_get_value_double(env, argv[0], &ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "fmaPeak(ms)");
    return NULL;
  }
  if (!(ms >= 1 && ms <= 10000)) ms = 200;
  double gflops = 0;
#ifdef CS_X86
  if (cpu_ok()) gflops = fma_peak(ms);
#endif
  napi_value r;
  CHECK(napi_create_double(env, gflops, &r));
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
 *        out: Float32Array, inputs: Float32Array[], isa?: "avx2") → plan handle. With isa "avx2"
 * the plan never takes the AVX-512 tiles (the tests compare the two paths' bits).
 * desc: nLayers, nHead, nInputs, nBranch, S, O, chunk, capacity, then the input sizes, then per
 * layer kind, I, H, xInput, xState, hOff, cOff, flags (F_*), per head K, O, act, per branch hOff, H, concatOff.
 */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
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
  if (argc >= 7) {
    char isa[8] = {0};
    size_t len = 0;
    napi_valuetype t;
    if (napi_typeof(env, argv[6], &t) == napi_ok && t == napi_string) {
      if (napi_get_value_string_utf8(env, argv[6], isa, sizeof isa, &len) != napi_ok || strcmp(isa, "avx2") != 0)
        FAIL("isa must be \"avx2\" or left out");
      p->avx2Only = 1;
    }
  }
  if (p->nLayers < 1 || p->nHead < 0 || p->nInputs < 1 || p->nBranch < 1 || p->S < 1 || p->O < 1 ||
      p->chunk < 1 || p->capacity < 1)
    FAIL("bad descriptor header");
  if (dn != (size_t)(8 + p->nInputs + 8 * p->nLayers + 3 * p->nHead + 3 * p->nBranch)) FAIL("bad descriptor length");
  const int32_t *q = d + 8;
  p->inputSizes = calloc(p->nInputs, sizeof(int));
  p->layers = calloc(p->nLayers, sizeof(Layer));
  p->heads = calloc(p->nHead ? p->nHead : 1, sizeof(Head));
  p->copies = calloc(3 * p->nBranch, sizeof(int));
  p->inputs = calloc(p->nInputs, sizeof(float *));
  if (!p->inputSizes || !p->layers || !p->heads || !p->copies || !p->inputs) FAIL("out of memory");
  for (int i = 0; i < p->nInputs; i++) p->inputSizes[i] = *q++;
  int maxNS = 1, maxRH = 0;
  for (int l = 0; l < p->nLayers; l++) {
    Layer *L = &p->layers[l];
    L->kind = *q++;
    L->I = *q++;
    L->H = *q++;
    L->xInput = *q++;
    L->xState = *q++;
    L->hOff = *q++;
    L->cOff = *q++;
    L->flags = *q++;
    L->G = (L->H + 7) / 8;
    L->K = L->I + L->H;
    if ((L->kind != KIND_LSTM && L->kind != KIND_GRU) || L->I < 1 || L->H < 1 ||
        (L->flags & ~(L->kind == KIND_LSTM ? F_PEEPHOLE | F_COUPLED : F_RESET_BEFORE)))
      FAIL("bad layer");
    if (L->xState < 0 && (L->xInput < 0 || L->xInput >= p->nInputs || p->inputSizes[L->xInput] != L->I))
      FAIL("bad layer input");
    if (L->xState + (L->xState < 0 ? 0 : L->I) > p->S || L->hOff < 0 || L->hOff + L->H > p->S) FAIL("bad layer offsets");
    if (L->kind == KIND_LSTM && (L->cOff < 0 || L->cOff + L->H > p->S)) FAIL("bad layer offsets");
    const int NG = L->kind == KIND_LSTM ? 4 : 3;
    const int NV = L->G * NG;
    const int before = L->flags & F_RESET_BEFORE;
    // Panels per range: all NV vectors over x; over h all of them, or (reset before) z and r
    // only, then the candidate's G vectors over r ⊙ h.
    const int NPx = (NV + 3) / 4, NPh = before ? (2 * L->G + 3) / 4 : NPx, NPn = before ? (L->G + 3) / 4 : 0;
    // Slots: vector v of x·W in slot v (z, r, n of group g: 3g, 3g + 1, 3g + 2; an LSTM's 4g..4g+3),
    // then a GRU's candidate recurrent sums (group g: 4·NPx + g), then (reset before) the two
    // padding vectors of h·[z r] when G is odd, which write their own unread slots.
    L->NS = before ? NPx + NPn + 1 : (4 * NPx + (NG == 3 ? L->G : 0) + 3) / 4;
    L->nRanges = before ? 3 : 2;
    const int NPs[3] = {NPx, NPh, NPn};
    const size_t wF = before ? (size_t)PW * ((size_t)NPx * L->I + (size_t)(NPh + NPn) * L->H) : (size_t)NPx * L->K * PW;
    L->w = copy_weights(env, argv[1], 2 * l, wF);
    L->b = copy_weights(env, argv[1], 2 * l + 1, (size_t)L->G * (L->flags & F_PEEPHOLE ? 56 : 32));
    if (!L->w || !L->b) FAIL("layer weights of the wrong size");
    for (int r = 0; r < L->nRanges; r++) {
      Range *R = &L->rg[r];
      R->NP = NPs[r];
      R->len = r == 0 ? L->I : L->H;
      R->src = r == 0 ? SRC_X : r == 1 ? SRC_H : SRC_RH;
      // Reset before: three matrices back to back, each panel its own range's rows only.
      R->panelF = (size_t)PW * (before ? R->len : L->K);
      R->w = before ? L->w + (r == 0 ? 0 : (size_t)PW * ((size_t)NPx * L->I + (r == 2 ? (size_t)NPh * L->H : 0)))
                    : L->w + (r == 0 ? 0 : (size_t)L->I * PW);
      R->slot = calloc((size_t)R->NP * 4, sizeof(int));
      R->dst = calloc((size_t)R->NP * 4, sizeof(int));
      if (!R->slot || !R->dst) FAIL("out of memory");
      for (int v = 0; v < R->NP * 4; v++) {
        const int g = v / NG, j = v % NG;
        if (r == 0 || (!before && !(NG == 3 && j == 2 && v < NV)))
          R->slot[v] = v; // padding of a GRU's last panel (all-zero weights): its own slot, unread
        else if (!before)
          R->slot[v] = 4 * NPx + g; // the candidate's recurrent sum, which r multiplies apart
        else if (r == 1)
          R->slot[v] = v < 2 * L->G ? 3 * (v / 2) + (v & 1) : 4 * (NPx + NPn) + v - 2 * L->G;
        else
          R->slot[v] = 4 * NPx + v; // v ≥ G: padding, unread
      }
    }
    L->dstN = -1;
    if (L->NS > maxNS) maxNS = L->NS;
    if (before && 8 * L->G > maxRH) maxRH = 8 * L->G;
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
  p->maxNS = maxNS;
  p->rhStride = maxRH;
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
  p->pre = alloc32((size_t)p->chunk * maxNS * 32);
  p->concat = alloc32((size_t)p->chunk * p->concatStride);
  p->hbuf[0] = alloc32((size_t)p->chunk * p->headStride);
  p->hbuf[1] = alloc32((size_t)p->chunk * p->headStride);
  p->rh = maxRH ? alloc32((size_t)p->chunk * maxRH) : NULL;
  if (!p->sptr || !p->pre || !p->concat || !p->hbuf[0] || !p->hbuf[1] || (maxRH && !p->rh)) FAIL("out of memory");

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
    p->n = n;
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
      {"isa", NULL, js_isa, NULL, NULL, NULL, napi_default, NULL},
      {"fmaPeak", NULL, js_fma_peak, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
