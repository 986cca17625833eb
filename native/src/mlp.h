// The LESA predictor: Linear(2C,H) - ReLU - Linear(H,H) - ReLU - Linear(H,C).
// Parameters are packed W1[H,2C] b1[H] W2[H,H] b2[H] W3[C,H] b3[C], row-major [out,in]
// like PyTorch (mirrored by predictorLayout in src/native/predictor-layout.ts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lesa {

struct MlpLayout {
  size_t cols, hidden;
  size_t w1() const { return 0; }
  size_t b1() const { return w1() + hidden * 2 * cols; }
  size_t w2() const { return b1() + hidden; }
  size_t b2() const { return w2() + hidden * hidden; }
  size_t w3() const { return b2() + hidden; }
  size_t b3() const { return w3() + cols * hidden; }
  size_t total() const { return b3() + cols; }
};

// Activations and gradients for up to `capacity` samples.
struct MlpWorkspace {
  MlpWorkspace(const MlpLayout& l, size_t capacity);
  std::vector<float> a1, a2, pred, dpred, d1, d2, grad;
};

// Forward for n samples whose input rows are [left[s*ld..+C], right[s*ld..+C]]; fills
// ws.a1, ws.a2 and ws.pred (n x C).
void mlpForward(const MlpLayout& l, const float* params, const float* left, const float* right, size_t ld, size_t n,
                MlpWorkspace& ws);

// Loss (1-lambda)*MSE + lambda*(|pred|_F - |target|_F)^2 over the batch; sets ws.dpred.
double lesaLoss(const MlpLayout& l, size_t n, const float* target, double lambda, MlpWorkspace& ws);

// Backward after mlpForward/lesaLoss; x is the n x 2C input. Fills ws.grad.
void mlpBackward(const MlpLayout& l, const float* params, const float* x, size_t n, MlpWorkspace& ws);

struct AdamW {
  // lr and weightDecay come from the caller (the TypeScript side owns LESA's defaults).
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0;
  std::vector<float> m, v;
  int64_t t = 0;
  void step(float* params, const float* grad, size_t count);
};

// splitmix64: small, seedable, identical on every platform.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next() * n >> 64); }
};

// PyTorch's default Linear init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void mlpInit(const MlpLayout& l, float* params, SplitMix64& rng);

}  // namespace lesa
