// Gram accumulation, symmetric eigendecomposition, SVD coefficients, reconstruction.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "common.h"

namespace lesa {

namespace {

// Bound on the f64 scratch a job may allocate besides its inputs and outputs.
std::atomic<size_t> gScratchBytes{size_t(64) << 20};
constexpr size_t kTile = 64;

void columnsToF64(const float* W, size_t rows, size_t cols, size_t c0, size_t cc, double* out) {
  for (size_t r = 0; r < rows; ++r) {
    const float* src = W + r * cols + c0;
    double* dst = out + r * cc;
    for (size_t j = 0; j < cc; ++j) dst[j] = src[j];
  }
}

void mirrorUpperToLower(double* G, size_t n) {
  for (size_t ib = 0; ib < n; ib += kTile)
    for (size_t jb = ib; jb < n; jb += kTile)
      for (size_t i = ib; i < std::min(ib + kTile, n); ++i)
        for (size_t j = std::max(jb, i + 1); j < std::min(jb + kTile, n); ++j) G[j * n + i] = G[i * n + j];
}

void transposeInPlace(double* M, size_t n) {
  for (size_t ib = 0; ib < n; ib += kTile)
    for (size_t jb = ib; jb < n; jb += kTile)
      for (size_t i = ib; i < std::min(ib + kTile, n); ++i)
        for (size_t j = std::max(jb, i + 1); j < std::min(jb + kTile, n); ++j) std::swap(M[i * n + j], M[j * n + i]);
}

class GramWorker : public PromiseWorker {
 public:
  GramWorker(Napi::Env env, double* G, const float* W, size_t rows, size_t cols)
      : PromiseWorker(env), G_(G), W_(W), rows_(rows), cols_(cols) {}
  void Execute() override {
    size_t chunk = std::max<size_t>(1, std::min(cols_, gScratchBytes / (8 * rows_)));
    std::vector<double> buf(rows_ * chunk);
    for (size_t c0 = 0; c0 < cols_; c0 += chunk) {
      size_t cc = std::min(chunk, cols_ - c0);
      columnsToF64(W_, rows_, cols_, c0, cc, buf.data());
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, int(rows_), int(cc), 1.0, buf.data(), int(cc), 1.0, G_,
                  int(rows_));
    }
    mirrorUpperToLower(G_, rows_);
  }

 private:
  double* G_;
  const float* W_;
  size_t rows_, cols_;
};

// On return G holds the eigenvectors row-major, column k for values[k] (descending).
class EigWorker : public PromiseWorker {
 public:
  EigWorker(Napi::Env env, double* G, double* values, size_t n)
      : PromiseWorker(env), G_(G), values_(values), n_(n) {}
  void Execute() override {
    size_t n = n_;
    if (2 * n * n + 6 * n + 1 > size_t(INT_MAX)) throw std::runtime_error("eigSym: n too large for 32-bit LAPACK");
    std::vector<double> w(n);
    // G is symmetric, so its row-major upper triangle is the column-major lower one; calling
    // in column-major order avoids LAPACKE's transposed n*n copy.
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', int(n), G_, int(n), w.data());
    if (info == LAPACK_WORK_MEMORY_ERROR) throw std::runtime_error("eigSym: out of memory for LAPACK workspace");
    if (info == -5) throw std::runtime_error("eigSym: G contains NaN");
    if (info != 0) throw std::runtime_error("eigSym: dsyevd failed with info " + std::to_string(info));
    // Eigenvector j is now contiguous at G[j*n..]; fix its sign: largest |entry| positive.
    for (size_t j = 0; j < n; ++j) {
      double* v = G_ + j * n;
      size_t arg = 0;
      for (size_t i = 1; i < n; ++i)
        if (std::fabs(v[i]) > std::fabs(v[arg])) arg = i;
      if (v[arg] < 0)
        for (size_t i = 0; i < n; ++i) v[i] = -v[i];
    }
    transposeInPlace(G_, n);  // row-major, column j = eigenvector j (ascending)
    for (size_t i = 0; i < n; ++i) std::reverse(G_ + i * n, G_ + (i + 1) * n);
    for (size_t k = 0; k < n; ++k) values_[k] = w[n - 1 - k];
  }

 private:
  double* G_;
  double* values_;
  size_t n_;
};

// 1/S[k], or 0 where S[k] <= relTol * max(S): those coefficient rows are numerically zero.
std::vector<double> inverseKept(const double* S, size_t rank, double relTol) {
  double tol = relTol * *std::max_element(S, S + rank);
  std::vector<double> scale(rank);
  for (size_t k = 0; k < rank; ++k) scale[k] = S[k] > tol && S[k] > 0 ? 1.0 / S[k] : 0.0;
  return scale;
}

// V = diag(1/S) U^T W. With an f64 U: dgemm on f64 copies of W's column chunks. With an f32 U:
// one sgemm straight into V, about 2.4x less CPU, within V's own f32 rounding of the f64 route
// (bench/results/coefficient-precision.md). The 1/S scaling is f64 either way.
template <typename T>
class CoefficientsWorker : public PromiseWorker {
 public:
  CoefficientsWorker(Napi::Env env, const T* U, const double* S, const float* W, float* V, size_t rows,
                     size_t rank, size_t cols, double relTol)
      : PromiseWorker(env), U_(U), S_(S), W_(W), V_(V), rows_(rows), rank_(rank), cols_(cols), relTol_(relTol) {}
  void Execute() override {
    std::vector<double> scale = inverseKept(S_, rank_, relTol_);
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(rank_), int(cols_), int(rows_), 1.0f, U_, int(rank_),
                  W_, int(cols_), 0.0f, V_, int(cols_));
      for (size_t k = 0; k < rank_; ++k)
        for (size_t j = 0; j < cols_; ++j) V_[k * cols_ + j] = scale[k] == 0 ? 0.0f : float(V_[k * cols_ + j] * scale[k]);
    } else {
      size_t chunk = std::max<size_t>(1, std::min(cols_, gScratchBytes / (8 * (rows_ + rank_))));
      std::vector<double> wbuf(rows_ * chunk), vbuf(rank_ * chunk);
      for (size_t c0 = 0; c0 < cols_; c0 += chunk) {
        size_t cc = std::min(chunk, cols_ - c0);
        columnsToF64(W_, rows_, cols_, c0, cc, wbuf.data());
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(rank_), int(cc), int(rows_), 1.0, U_, int(rank_),
                    wbuf.data(), int(cc), 0.0, vbuf.data(), int(cc));
        for (size_t k = 0; k < rank_; ++k)
          for (size_t j = 0; j < cc; ++j) V_[k * cols_ + c0 + j] = scale[k] == 0 ? 0.0f : float(vbuf[k * cc + j] * scale[k]);
      }
    }
  }

 private:
  const T* U_;
  const double* S_;
  const float* W_;
  float* V_;
  size_t rows_, rank_, cols_;
  double relTol_;
};

class ReconstructWorker : public PromiseWorker {
 public:
  ReconstructWorker(Napi::Env env, const float* US, const float* V, float* out, size_t rows, size_t rank, size_t cols)
      : PromiseWorker(env), US_(US), V_(V), out_(out), rows_(rows), rank_(rank), cols_(cols) {}
  void Execute() override {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows_), int(cols_), int(rank_), 1.0f, US_, int(rank_),
                V_, int(cols_), 0.0f, out_, int(cols_));
  }

 private:
  const float *US_, *V_;
  float* out_;
  size_t rows_, rank_, cols_;
};

// gramAccumulate(G, W, rows, cols)
Napi::Value GramAccumulate(const Napi::CallbackInfo& info) {
  checkArgs(info, "gramAccumulate", "dfkk");
  Napi::Env env = info.Env();
  size_t rows = sizeArg(info[2]), cols = sizeArg(info[3]);
  requireLength(env, info[0], product(env, {rows, rows}), "G");
  requireLength(env, info[1], product(env, {rows, cols}), "W");
  auto* w = new GramWorker(env, dataOf<double>(info[0]), dataOf<float>(info[1]), rows, cols);
  w->keep(info[0]);
  w->keep(info[1]);
  return w->start();
}

// eigSym(G, values, n)
Napi::Value EigSym(const Napi::CallbackInfo& info) {
  checkArgs(info, "eigSym", "ddk");
  Napi::Env env = info.Env();
  size_t n = sizeArg(info[2]);
  requireLength(env, info[0], product(env, {n, n}), "G");
  requireLength(env, info[1], n, "values");
  auto* w = new EigWorker(env, dataOf<double>(info[0]), dataOf<double>(info[1]), n);
  w->keep(info[0]);
  w->keep(info[1]);
  return w->start();
}

// coefficients(U, S, W, V, rows, rank, cols, relTol) and coefficientsF32 (U as Float32Array)
template <typename T>
Napi::Value CoefficientsOf(const Napi::CallbackInfo& info, const char* name, const char* spec) {
  checkArgs(info, name, spec);
  Napi::Env env = info.Env();
  size_t rows = sizeArg(info[4]), rank = sizeArg(info[5]), cols = sizeArg(info[6]);
  requireLength(env, info[0], product(env, {rows, rank}), "U");
  requireLength(env, info[1], rank, "S");
  requireLength(env, info[2], product(env, {rows, cols}), "W");
  requireLength(env, info[3], product(env, {rank, cols}), "V");
  auto* w = new CoefficientsWorker<T>(env, dataOf<T>(info[0]), dataOf<double>(info[1]), dataOf<float>(info[2]),
                                      dataOf<float>(info[3]), rows, rank, cols, info[7].As<Napi::Number>().DoubleValue());
  for (size_t k = 0; k < 4; ++k) w->keep(info[k]);
  return w->start();
}
Napi::Value Coefficients(const Napi::CallbackInfo& info) { return CoefficientsOf<double>(info, "coefficients", "ddffkkkx"); }
Napi::Value CoefficientsF32(const Napi::CallbackInfo& info) { return CoefficientsOf<float>(info, "coefficientsF32", "fdffkkkx"); }

// reconstruct(US, V, out, rows, rank, cols)
Napi::Value Reconstruct(const Napi::CallbackInfo& info) {
  checkArgs(info, "reconstruct", "fffkkk");
  Napi::Env env = info.Env();
  size_t rows = sizeArg(info[3]), rank = sizeArg(info[4]), cols = sizeArg(info[5]);
  requireLength(env, info[0], product(env, {rows, rank}), "US");
  requireLength(env, info[1], product(env, {rank, cols}), "V");
  requireLength(env, info[2], product(env, {rows, cols}), "out");
  auto* w = new ReconstructWorker(env, dataOf<float>(info[0]), dataOf<float>(info[1]), dataOf<float>(info[2]), rows,
                                  rank, cols);
  for (size_t k = 0; k < 3; ++k) w->keep(info[k]);
  return w->start();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  checkArgs(info, "setThreads", "k");
  openblas_set_num_threads(int(sizeArg(info[0])));
  return info.Env().Undefined();
}

Napi::Value SetScratchBytes(const Napi::CallbackInfo& info) {
  checkArgs(info, "setScratchBytes", "n");
  gScratchBytes = sizeArg(info[0]);
  return info.Env().Undefined();
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  checkArgs(info, "getThreads", "");
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

Napi::Value BlasCoreName(const Napi::CallbackInfo& info) {
  checkArgs(info, "blasCoreName", "");
  return Napi::String::New(info.Env(), openblas_get_corename());
}

}  // namespace

void registerLinalg(Napi::Env env, Napi::Object exports) {
  exports.Set("gramAccumulate", Napi::Function::New(env, GramAccumulate, "gramAccumulate"));
  exports.Set("eigSym", Napi::Function::New(env, EigSym, "eigSym"));
  exports.Set("coefficients", Napi::Function::New(env, Coefficients, "coefficients"));
  exports.Set("coefficientsF32", Napi::Function::New(env, CoefficientsF32, "coefficientsF32"));
  exports.Set("reconstruct", Napi::Function::New(env, Reconstruct, "reconstruct"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("setScratchBytes", Napi::Function::New(env, SetScratchBytes, "setScratchBytes"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("blasCoreName", Napi::Function::New(env, BlasCoreName, "blasCoreName"));
}

}  // namespace lesa
