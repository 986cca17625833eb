// trainPredictor / predictRows bindings: LESA's MLP trained on coefficient triples that
// are gathered per mini-batch from memory or from a scratch file, never materialised.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "common.h"
#include "mlp.h"

namespace lesa {

namespace {

// V laid out [layer][rank][cols] f32 little-endian, in memory or at `offset` in a file.
class CoefficientSource {
 public:
  CoefficientSource(const float* mem, const std::string& path, uint64_t offset, size_t rank, size_t cols)
      : mem_(mem), path_(path), offset_(offset), rank_(rank), cols_(cols) {
    if (!mem_) {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) throw std::runtime_error("trainPredictor: cannot open " + path + ": " + std::strerror(errno));
    }
  }
  ~CoefficientSource() {
    if (fd_ >= 0) ::close(fd_);
  }
  void readRow(size_t layer, size_t k, float* dst) const {
    size_t index = (layer * rank_ + k) * cols_;
    if (mem_) {
      std::memcpy(dst, mem_ + index, cols_ * 4);
      return;
    }
    char* out = reinterpret_cast<char*>(dst);
    size_t want = cols_ * 4;
    off_t at = off_t(offset_ + index * 4);
    while (want > 0) {
      ssize_t got = ::pread(fd_, out, want, at);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        throw std::runtime_error("trainPredictor: short read from " + path_ + " at byte " + std::to_string(at) +
                                 (got < 0 ? std::string(": ") + std::strerror(errno) : std::string()));
      }
      out += got, want -= size_t(got), at += got;
    }
  }

 private:
  const float* mem_;
  std::string path_;
  uint64_t offset_;
  size_t rank_, cols_;
  int fd_ = -1;
};

struct TrainConfig {
  const float* V = nullptr;  // null: read from path
  std::string path;
  uint64_t offset = 0, seed = 0;
  size_t layers = 0, rank = 0, cols = 0, hidden = 0, epochs = 0, batch = 0;
  size_t steps = 0;  // optimizer steps in all; epochs = ceil(steps / batches), the last one cut short
  std::vector<int32_t> targets;
  double lr = 0, weightDecay = 0, lambda = 0;
  bool initialize = true;
  float* params = nullptr;
  double* epochLosses = nullptr;
};

struct Progress {
  double epoch, batchDone, batchTotal, runningLoss;
};

class TrainWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  TrainWorker(Napi::Env env, TrainConfig cfg, Napi::Value onProgress)
      : Napi::AsyncProgressWorker<Progress>(env), cfg_(std::move(cfg)), deferred_(Napi::Promise::Deferred::New(env)) {
    if (onProgress.IsFunction()) onProgress_ = Napi::Persistent(onProgress.As<Napi::Function>());
  }
  void keep(const Napi::Value& v) { kept_.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }
  Napi::Promise start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    const TrainConfig& c = cfg_;
    MlpLayout l{c.cols, c.hidden};
    CoefficientSource source(c.V, c.path, c.offset, c.rank, c.cols);
    SplitMix64 initRng{c.seed ^ 0x5851f42d4c957f2dull}, shuffleRng{c.seed};
    if (c.initialize) mlpInit(l, c.params, initRng);

    size_t samples = c.targets.size() * c.rank, batches = (samples + c.batch - 1) / c.batch;
    size_t capacity = std::min(c.batch, samples), C = c.cols;
    std::vector<uint32_t> order(samples);
    std::vector<float> x(capacity * 2 * C), y(capacity * C);
    MlpWorkspace ws(l, capacity);
    AdamW opt;
    opt.lr = c.lr;
    opt.weightDecay = c.weightDecay;
    auto lastReport = std::chrono::steady_clock::now();

    size_t remaining = c.steps;
    for (size_t epoch = 0; epoch < c.epochs; ++epoch) {
      std::iota(order.begin(), order.end(), 0u);
      for (size_t i = samples - 1; i > 0; --i) std::swap(order[i], order[shuffleRng.below(i + 1)]);
      double sum = 0;
      size_t run = std::min(batches, remaining);
      remaining -= run;
      for (size_t b = 0; b < run; ++b) {
        if (cancelled_) throw std::runtime_error("trainPredictor: cancelled");
        size_t n = std::min(c.batch, samples - b * c.batch);
        for (size_t s = 0; s < n; ++s) {
          uint32_t sample = order[b * c.batch + s];
          size_t layer = size_t(c.targets[sample / c.rank]), k = sample % c.rank;
          source.readRow(layer - 1, k, &x[s * 2 * C]);
          source.readRow(layer + 1, k, &x[s * 2 * C + C]);
          source.readRow(layer, k, &y[s * C]);
        }
        mlpForward(l, c.params, x.data(), x.data() + C, 2 * C, n, ws);
        double loss = lesaLoss(l, n, y.data(), c.lambda, ws);
        if (!std::isfinite(loss)) {
          throw std::runtime_error("trainPredictor: loss diverged (" + std::string(std::isnan(loss) ? "NaN" : "Inf") +
                                   ") in epoch " + std::to_string(epoch + 1) + " of " + std::to_string(c.epochs) +
                                   ", batch " + std::to_string(b + 1) + " of " + std::to_string(batches) +
                                   "; lower lr or check the coefficients for NaN/Inf");
        }
        mlpBackward(l, c.params, x.data(), n, ws);
        opt.step(c.params, ws.grad.data(), l.total());
        sum += loss;
        auto now = std::chrono::steady_clock::now();
        if (!onProgress_.IsEmpty() && (b + 1 == run || now - lastReport >= std::chrono::milliseconds(100))) {
          lastReport = now;
          Progress p{double(epoch + 1), double(b + 1), double(batches), sum / double(b + 1)};
          progress.Send(&p, 1);
        }
      }
      c.epochLosses[epoch] = sum / double(run);
    }
  }

  void OnProgress(const Progress* p, size_t count) override {
    if (p == nullptr || count == 0 || onProgress_.IsEmpty() || cancelled_) return;
    Napi::Env env = Env();
    try {
      onProgress_.Call({Napi::Number::New(env, p->epoch), Napi::Number::New(env, p->batchDone),
                        Napi::Number::New(env, p->batchTotal), Napi::Number::New(env, p->runningLoss)});
    } catch (const Napi::Error& e) {  // a throwing callback ends training with its error
      callbackError_ = Napi::Persistent(e.Value());
      cancelled_ = true;
    }
  }
  // Progress calls all run before these (AsyncProgressWorker completes after its queue drains).
  void OnOK() override {
    if (callbackError_.IsEmpty()) deferred_.Resolve(Env().Undefined());
    else deferred_.Reject(callbackError_.Value());
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(callbackError_.IsEmpty() ? e.Value() : callbackError_.Value());
  }

 private:
  TrainConfig cfg_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference onProgress_;
  Napi::ObjectReference callbackError_;
  std::atomic<bool> cancelled_{false};
  std::vector<Napi::ObjectReference> kept_;
};

class PredictWorker : public PromiseWorker {
 public:
  PredictWorker(Napi::Env env, const float* params, size_t hidden, size_t cols, const float* left, const float* right,
                float* out, size_t rows)
      : PromiseWorker(env), params_(params), layout_{cols, hidden}, left_(left), right_(right), out_(out), rows_(rows) {}
  void Execute() override {
    constexpr size_t kChunk = 1024;
    size_t C = layout_.cols;
    MlpWorkspace ws(layout_, std::min(rows_, kChunk));
    for (size_t r0 = 0; r0 < rows_; r0 += kChunk) {
      size_t n = std::min(kChunk, rows_ - r0);
      mlpForward(layout_, params_, left_ + r0 * C, right_ + r0 * C, C, n, ws);
      std::memcpy(out_ + r0 * C, ws.pred.data(), n * C * 4);
    }
  }

 private:
  const float* params_;
  MlpLayout layout_;
  const float *left_, *right_;
  float* out_;
  size_t rows_;
};

Napi::Value field(const Napi::Object& opts, const char* name, char kind) {
  Napi::Value v = opts.Get(name);
  checkValue(opts.Env(), v, kind, std::string("trainPredictor option ") + name);
  return v;
}

// trainPredictor(opts): every option present and validated by the TS layer; V is either a
// Float32Array or undefined with `path` naming the scratch file.
Napi::Value TrainPredictor(const Napi::CallbackInfo& info) {
  checkArgs(info, "trainPredictor", "o");
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  TrainConfig c;
  c.layers = sizeArg(field(o, "layers", 'k'));
  c.rank = sizeArg(field(o, "rank", 'k'));
  c.cols = sizeArg(field(o, "cols", 'k'));
  c.hidden = sizeArg(field(o, "hidden", 'k'));
  c.epochs = sizeArg(field(o, "epochs", 'k'));
  c.steps = sizeArg(field(o, "steps", 'k'));
  c.batch = sizeArg(field(o, "batch", 'k'));
  c.offset = sizeArg(field(o, "offset", 'n'));
  c.seed = sizeArg(field(o, "seed", 'n'));
  c.lr = field(o, "lr", 'x').As<Napi::Number>().DoubleValue();
  c.weightDecay = field(o, "weightDecay", 'x').As<Napi::Number>().DoubleValue();
  c.lambda = field(o, "lambda", 'x').As<Napi::Number>().DoubleValue();
  c.initialize = o.Get("initialize").ToBoolean();
  Napi::Value V = o.Get("V"), targets = field(o, "targets", 'i'), params = field(o, "params", 'f'),
              losses = field(o, "epochLosses", 'd'), onProgress = field(o, "onProgress", 'F');
  if (V.IsUndefined()) {
    c.path = field(o, "path", 's').As<Napi::String>();
  } else {
    checkValue(env, V, 'f', "trainPredictor option V");
    requireLength(env, V, product(env, {c.layers, c.rank, c.cols}), "V");
    c.V = dataOf<float>(V);
  }
  requireLength(env, params, MlpLayout{c.cols, c.hidden}.total(), "params");
  requireLength(env, losses, c.epochs, "epochLosses");
  const int32_t* t = dataOf<int32_t>(targets);
  c.targets.assign(t, t + lengthOf(targets));
  for (int32_t layer : c.targets) {
    if (layer < 1 || size_t(layer) + 2 > c.layers) throw Napi::RangeError::New(env, "lesa_native: target out of range");
  }
  if (c.targets.empty() || product(env, {c.targets.size(), c.rank}) > UINT32_MAX) {
    throw Napi::RangeError::New(env, "lesa_native: sample count must be in [1, 2^32-1]");
  }
  size_t batches = (c.targets.size() * c.rank + c.batch - 1) / c.batch;
  if (c.steps == 0 || c.epochs != (c.steps + batches - 1) / batches) {
    throw Napi::RangeError::New(env, "lesa_native: epochs must be ceil(steps / batches)");
  }
  c.params = dataOf<float>(params);
  c.epochLosses = dataOf<double>(losses);
  auto* w = new TrainWorker(env, std::move(c), onProgress);
  if (!V.IsUndefined()) w->keep(V);
  w->keep(params);
  w->keep(losses);
  return w->start();
}

// predictRows(params, hidden, cols, left, right, out, rows)
Napi::Value PredictRows(const Napi::CallbackInfo& info) {
  checkArgs(info, "predictRows", "fkkfffk");
  Napi::Env env = info.Env();
  size_t hidden = sizeArg(info[1]), cols = sizeArg(info[2]), rows = sizeArg(info[6]);
  requireLength(env, info[0], MlpLayout{cols, hidden}.total(), "params");
  for (size_t k = 3; k <= 5; ++k) requireLength(env, info[k], product(env, {rows, cols}), "left/right/out");
  auto* w = new PredictWorker(env, dataOf<float>(info[0]), hidden, cols, dataOf<float>(info[3]),
                              dataOf<float>(info[4]), dataOf<float>(info[5]), rows);
  for (size_t k : {0, 3, 4, 5}) w->keep(info[k]);
  return w->start();
}

}  // namespace

void registerPredictor(Napi::Env env, Napi::Object exports) {
  exports.Set("trainPredictor", Napi::Function::New(env, TrainPredictor, "trainPredictor"));
  exports.Set("predictRows", Napi::Function::New(env, PredictRows, "predictRows"));
}

}  // namespace lesa
