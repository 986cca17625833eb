// Little-endian dtype conversions. Synchronous: they are memory-bound and write into an
// output array the caller allocated, so no extra copy is made.
#include <cmath>
#include <cstring>

#include "common.h"

namespace lesa {

namespace {

inline uint32_t bitsOf(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float floatOf(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

float f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) return floatOf(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {  // zero or subnormal: mant * 2^-24 is exact in f32
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return floatOf(sign | bitsOf(v));
  }
  return floatOf(sign | ((exp + 112) << 23) | (mant << 13));
}

// Round-to-nearest-even via the FPU (Maratyszcza's FP16 trick): scaling by 2^112 then
// 2^-110 saturates overflow to Inf, adding a bias aligns the f16 rounding position.
uint16_t f32ToF16(float f) {
  float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
  uint32_t w = bitsOf(f), shl1 = w + w, sign = w & 0x80000000u;
  uint32_t bias = shl1 & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = floatOf((bias >> 1) + 0x07800000u) + base;
  uint32_t bits = bitsOf(base);
  uint32_t nonsign = ((bits >> 13) & 0x7c00u) + (bits & 0x0fffu);
  return static_cast<uint16_t>((sign >> 16) | (shl1 > 0xff000000u ? 0x7e00u : nonsign));
}

uint16_t f32ToBf16(float f) {
  uint32_t u = bitsOf(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

int dtypeSize(Napi::Env env, const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  throw Napi::TypeError::New(env, "lesa_native: unknown dtype " + dtype);
}

// toF32(src: Uint8Array, dst: Float32Array, dtype)
Napi::Value ToF32(const Napi::CallbackInfo& info) {
  checkArgs(info, "toF32", "ufs");
  std::string dtype = info[2].As<Napi::String>();
  size_t size = dtypeSize(info.Env(), dtype), n = lengthOf(info[1]);
  requireLength(info.Env(), info[0], n * size, "src");
  const uint8_t* src = dataOf<uint8_t>(info[0]);
  float* dst = dataOf<float>(info[1]);
  if (size == 4) {
    std::memcpy(dst, src, n * 4);
  } else if (dtype == "F16") {
    for (size_t i = 0; i < n; ++i) { uint16_t h; std::memcpy(&h, src + 2 * i, 2); dst[i] = f16ToF32(h); }
  } else {
    for (size_t i = 0; i < n; ++i) { uint16_t h; std::memcpy(&h, src + 2 * i, 2); dst[i] = floatOf(uint32_t(h) << 16); }
  }
  return info.Env().Undefined();
}

// fromF32(src: Float32Array, dst: Uint8Array, dtype)
Napi::Value FromF32(const Napi::CallbackInfo& info) {
  checkArgs(info, "fromF32", "fus");
  std::string dtype = info[2].As<Napi::String>();
  size_t size = dtypeSize(info.Env(), dtype), n = lengthOf(info[0]);
  requireLength(info.Env(), info[1], n * size, "dst");
  const float* src = dataOf<float>(info[0]);
  uint8_t* dst = dataOf<uint8_t>(info[1]);
  if (size == 4) {
    std::memcpy(dst, src, n * 4);
  } else if (dtype == "F16") {
    for (size_t i = 0; i < n; ++i) { uint16_t h = f32ToF16(src[i]); std::memcpy(dst + 2 * i, &h, 2); }
  } else {
    for (size_t i = 0; i < n; ++i) { uint16_t h = f32ToBf16(src[i]); std::memcpy(dst + 2 * i, &h, 2); }
  }
  return info.Env().Undefined();
}

Napi::Value CountNonFinite(const Napi::CallbackInfo& info) {
  checkArgs(info, "countNonFinite", "f");
  const float* x = dataOf<float>(info[0]);
  size_t n = lengthOf(info[0]), bad = 0;
  for (size_t i = 0; i < n; ++i) bad += (bitsOf(x[i]) & 0x7f800000u) == 0x7f800000u;
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

}  // namespace

void registerConvert(Napi::Env env, Napi::Object exports) {
  exports.Set("toF32", Napi::Function::New(env, ToF32, "toF32"));
  exports.Set("fromF32", Napi::Function::New(env, FromF32, "fromF32"));
  exports.Set("countNonFinite", Napi::Function::New(env, CountNonFinite, "countNonFinite"));
}

}  // namespace lesa
