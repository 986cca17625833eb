#include "common.h"

namespace lesa {
void registerConvert(Napi::Env env, Napi::Object exports);
void registerCopy(Napi::Env env, Napi::Object exports);
void registerLinalg(Napi::Env env, Napi::Object exports);
void registerPredictor(Napi::Env env, Napi::Object exports);
}  // namespace lesa

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  lesa::registerConvert(env, exports);
  lesa::registerCopy(env, exports);
  lesa::registerLinalg(env, exports);
  lesa::registerPredictor(env, exports);
  return exports;
}

NODE_API_MODULE(lesa_native, Init)
