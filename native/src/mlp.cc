#include "mlp.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace lesa {

namespace {

void addBiasRelu(float* z, const float* bias, size_t n, size_t width, bool relu) {
  for (size_t s = 0; s < n; ++s) {
    float* row = z + s * width;
    for (size_t j = 0; j < width; ++j) {
      float v = row[j] + bias[j];
      row[j] = relu && v < 0.0f ? 0.0f : v;  // NaN passes through, so divergence shows in the loss
    }
  }
}

void columnSums(const float* m, size_t n, size_t width, float* out) {
  std::fill(out, out + width, 0.0f);
  for (size_t s = 0; s < n; ++s)
    for (size_t j = 0; j < width; ++j) out[j] += m[s * width + j];
}

// d *= (a > 0): ReLU backward, a being the post-activation.
void maskRelu(float* d, const float* a, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!(a[i] > 0.0f)) d[i] = 0.0f;
}

}  // namespace

MlpWorkspace::MlpWorkspace(const MlpLayout& l, size_t capacity)
    : a1(capacity * l.hidden), a2(capacity * l.hidden), pred(capacity * l.cols), dpred(capacity * l.cols),
      d1(capacity * l.hidden), d2(capacity * l.hidden), grad(l.total()) {}

void mlpForward(const MlpLayout& l, const float* p, const float* left, const float* right, size_t ld, size_t n,
                MlpWorkspace& ws) {
  const int N = int(n), C = int(l.cols), H = int(l.hidden);
  // W1 = [W1_left | W1_right] (each H x C, row stride 2C), so no concatenated input is needed.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, C, 1.0f, left, int(ld), p + l.w1(), 2 * C, 0.0f,
              ws.a1.data(), H);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, C, 1.0f, right, int(ld), p + l.w1() + C, 2 * C, 1.0f,
              ws.a1.data(), H);
  addBiasRelu(ws.a1.data(), p + l.b1(), n, l.hidden, true);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, H, 1.0f, ws.a1.data(), H, p + l.w2(), H, 0.0f,
              ws.a2.data(), H);
  addBiasRelu(ws.a2.data(), p + l.b2(), n, l.hidden, true);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, H, 1.0f, ws.a2.data(), H, p + l.w3(), H, 0.0f,
              ws.pred.data(), C);
  addBiasRelu(ws.pred.data(), p + l.b3(), n, l.cols, false);
}

double lesaLoss(const MlpLayout& l, size_t n, const float* target, double lambda, MlpWorkspace& ws) {
  size_t count = n * l.cols;
  const float* pred = ws.pred.data();
  double sse = 0, pp = 0, tt = 0;
  for (size_t i = 0; i < count; ++i) {
    double d = double(pred[i]) - target[i];
    sse += d * d;
    pp += double(pred[i]) * pred[i];
    tt += double(target[i]) * target[i];
  }
  double np = std::sqrt(pp), nt = std::sqrt(tt), gap = np - nt;
  double mseScale = (1 - lambda) * 2.0 / double(count);
  double normScale = np > 0 ? lambda * 2.0 * gap / np : 0.0;  // d|p|/dp = p/|p|, taken as 0 at p = 0
  for (size_t i = 0; i < count; ++i)
    ws.dpred[i] = float(mseScale * (double(pred[i]) - target[i]) + normScale * pred[i]);
  return (1 - lambda) * sse / double(count) + lambda * gap * gap;
}

void mlpBackward(const MlpLayout& l, const float* p, const float* x, size_t n, MlpWorkspace& ws) {
  const int N = int(n), C = int(l.cols), H = int(l.hidden);
  float* g = ws.grad.data();
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, H, N, 1.0f, ws.dpred.data(), C, ws.a2.data(), H, 0.0f,
              g + l.w3(), H);
  columnSums(ws.dpred.data(), n, l.cols, g + l.b3());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, C, 1.0f, ws.dpred.data(), C, p + l.w3(), H, 0.0f,
              ws.d2.data(), H);
  maskRelu(ws.d2.data(), ws.a2.data(), n * l.hidden);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, H, N, 1.0f, ws.d2.data(), H, ws.a1.data(), H, 0.0f,
              g + l.w2(), H);
  columnSums(ws.d2.data(), n, l.hidden, g + l.b2());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, H, 1.0f, ws.d2.data(), H, p + l.w2(), H, 0.0f,
              ws.d1.data(), H);
  maskRelu(ws.d1.data(), ws.a1.data(), n * l.hidden);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, 2 * C, N, 1.0f, ws.d1.data(), H, x, 2 * C, 0.0f,
              g + l.w1(), 2 * C);
  columnSums(ws.d1.data(), n, l.hidden, g + l.b1());
}

// One AdamW update over n floats, vectorised for the best ISA at load time (ifunc). build.sh's
// -fno-math-errno lets sqrt vectorise and -ffp-contract=off forbids FMA contraction: with IEEE
// sqrt/div every clone computes the same bits.
__attribute__((target_clones("avx512f", "avx2", "default")))
static void adamwUpdate(float* __restrict p, float* __restrict m, float* __restrict v, const float* __restrict g,
                        size_t n, float b1, float w1, float b2, float w2, float decay, float stepSize,
                        float invSqrtBc2, float eps) {
  for (size_t i = 0; i < n; ++i) {
    float mi = b1 * m[i] + w1 * g[i], vi = b2 * v[i] + w2 * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - stepSize * mi / (__builtin_sqrtf(vi) * invSqrtBc2 + eps);
  }
}

// torch.optim.AdamW, in float32 like torch: decoupled decay p *= 1 - lr*wd, then the
// bias-corrected Adam step.
void AdamW::step(float* params, const float* grad, size_t count) {
  if (m.empty()) m.assign(count, 0.0f), v.assign(count, 0.0f);
  ++t;
  adamwUpdate(params, m.data(), v.data(), grad, count, float(beta1), float(1 - beta1), float(beta2), float(1 - beta2),
              float(1 - lr * weightDecay), float(lr / (1 - std::pow(beta1, double(t)))),
              float(1 / std::sqrt(1 - std::pow(beta2, double(t)))), float(eps));
}

void mlpInit(const MlpLayout& l, float* p, SplitMix64& rng) {
  auto fill = [&](size_t offset, size_t count, size_t fanIn) {
    double bound = 1.0 / std::sqrt(double(fanIn));
    for (size_t i = 0; i < count; ++i) p[offset + i] = float(-bound + 2 * bound * rng.uniform());
  };
  fill(l.w1(), l.hidden * 2 * l.cols, 2 * l.cols);
  fill(l.b1(), l.hidden, 2 * l.cols);
  fill(l.w2(), l.hidden * l.hidden, l.hidden);
  fill(l.b2(), l.hidden, l.hidden);
  fill(l.w3(), l.cols * l.hidden, l.hidden);
  fill(l.b3(), l.cols, l.hidden);
}

}  // namespace lesa
