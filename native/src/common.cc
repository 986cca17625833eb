#include "common.h"

#include <cmath>

namespace lesa {

namespace {

bool isTyped(const Napi::Value& v, napi_typedarray_type t) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == t;
}

bool isInteger(const Napi::Value& v, double lo, double hi) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  return std::isfinite(d) && std::floor(d) == d && d >= lo && d <= hi;
}

}  // namespace

void checkValue(Napi::Env env, const Napi::Value& v, char kind, const std::string& what) {
  bool ok = false;
  const char* expected = "";
  switch (kind) {
    case 'u': ok = isTyped(v, napi_uint8_array); expected = "Uint8Array"; break;
    case 'f': ok = isTyped(v, napi_float32_array); expected = "Float32Array"; break;
    case 'd': ok = isTyped(v, napi_float64_array); expected = "Float64Array"; break;
    case 'i': ok = isTyped(v, napi_int32_array); expected = "Int32Array"; break;
    case 'k': ok = isInteger(v, 1, 2147483647.0); expected = "integer in [1, 2^31-1]"; break;
    case 'n': ok = isInteger(v, 0, 9007199254740991.0); expected = "non-negative safe integer"; break;
    case 'x': ok = v.IsNumber() && std::isfinite(v.As<Napi::Number>().DoubleValue()); expected = "finite number"; break;
    case 's': ok = v.IsString(); expected = "string"; break;
    case 'o': ok = v.IsObject(); expected = "object"; break;
    case 'F': ok = v.IsFunction() || v.IsUndefined(); expected = "function or undefined"; break;
  }
  if (!ok) throw Napi::TypeError::New(env, "lesa_native: expected " + std::string(expected) + " for " + what);
}

void checkArgs(const Napi::CallbackInfo& info, const char* fn, const char* spec) {
  size_t n = std::char_traits<char>::length(spec);
  if (info.Length() != n) {
    throw Napi::TypeError::New(info.Env(), std::string("lesa_native.") + fn + ": expected " + std::to_string(n) +
                                               " arguments but received " + std::to_string(info.Length()));
  }
  for (size_t k = 0; k < n; ++k) {
    checkValue(info.Env(), info[k], spec[k], std::string(fn) + " argument " + std::to_string(k));
  }
}

size_t product(Napi::Env env, std::initializer_list<size_t> dims) {
  size_t p = 1;
  for (size_t d : dims) {
    if (__builtin_mul_overflow(p, d, &p)) throw Napi::RangeError::New(env, "lesa_native: size overflow");
  }
  return p;
}

void requireLength(Napi::Env env, const Napi::Value& arr, size_t expected, const char* what) {
  if (lengthOf(arr) != expected) {
    throw Napi::RangeError::New(env, std::string("lesa_native: ") + what + " has length " +
                                         std::to_string(lengthOf(arr)) + ", expected " + std::to_string(expected));
  }
}

}  // namespace lesa
