// Shared helpers for the bindings. The TypeScript layer (src/native) validates every
// argument; the checks here are only a contract so that a misused raw binding throws
// instead of reading out of bounds.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace lesa {

// Argument spec letters: u Uint8Array, f Float32Array, d Float64Array, i Int32Array,
// k dimension (integer 1..2^31-1), n non-negative safe integer, x finite number,
// s string, o object, F function or undefined.
void checkArgs(const Napi::CallbackInfo& info, const char* fn, const char* spec);
void checkValue(Napi::Env env, const Napi::Value& v, char kind, const std::string& what);

// Product of dims, throwing a RangeError on size_t overflow.
size_t product(Napi::Env env, std::initializer_list<size_t> dims);
void requireLength(Napi::Env env, const Napi::Value& arr, size_t expected, const char* what);

template <typename T>
T* dataOf(const Napi::Value& v) {
  return v.As<Napi::TypedArrayOf<T>>().Data();
}
inline size_t lengthOf(const Napi::Value& v) { return v.As<Napi::TypedArray>().ElementLength(); }
inline size_t sizeArg(const Napi::Value& v) { return static_cast<size_t>(v.As<Napi::Number>().Int64Value()); }

// One heavy job off the main thread; settles a Promise. Typed arrays the job reads or
// writes are kept referenced until it ends so the GC cannot free them underneath.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  void keep(const Napi::Value& v) { kept_.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }
  Napi::Promise start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

 protected:
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  Napi::Promise::Deferred deferred_;

 private:
  std::vector<Napi::ObjectReference> kept_;
};

}  // namespace lesa
