// Byte-for-byte tensor copies at disk speed: the kernel moves the bytes (copy_file_range,
// pread/pwrite where it cannot), while a second thread checks them for NaN/Inf and feeds
// the output file's running sha256 (OpenSSL's, exported by Node). Nothing passes through a
// JavaScript buffer, and no f32 copy of a tensor is ever made.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/types.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace lesa {

namespace {

// Bytes moved per step: large enough that syscalls and thread hand-offs are noise, small
// enough that the two buffers stay a rounding error next to the tensors.
constexpr size_t kChunk = 8u << 20;

// ---- NaN/Inf on raw little-endian bytes: an element is non-finite iff its exponent is all ones.

template <typename U>
size_t countExpAllOnes(const uint8_t* p, size_t n, U mask) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    U v;
    std::memcpy(&v, p + i * sizeof(U), sizeof(U));
    bad += (v & mask) == mask;
  }
  return bad;
}

enum class Check { None, F64, F32, F16, BF16 };

Check checkOf(Napi::Env env, const std::string& s) {
  if (s == "") return Check::None;
  if (s == "F64") return Check::F64;
  if (s == "F32") return Check::F32;
  if (s == "F16") return Check::F16;
  if (s == "BF16") return Check::BF16;
  throw Napi::TypeError::New(env, "lesa_native: unknown dtype to check " + s);
}

size_t elemSize(Check c) {
  switch (c) {
    case Check::F64: return 8;
    case Check::F32: return 4;
    case Check::F16: case Check::BF16: return 2;
    case Check::None: return 1;
  }
  return 1;
}

size_t countNonFiniteRaw(const uint8_t* p, size_t bytes, Check c) {
  switch (c) {
    case Check::None: return 0;
    case Check::F64: return countExpAllOnes<uint64_t>(p, bytes / 8, 0x7ff0000000000000ull);
    case Check::F32: return countExpAllOnes<uint32_t>(p, bytes / 4, 0x7f800000u);
    case Check::F16: return countExpAllOnes<uint16_t>(p, bytes / 2, uint16_t(0x7c00));
    case Check::BF16: return countExpAllOnes<uint16_t>(p, bytes / 2, uint16_t(0x7f80));
  }
  return 0;
}

bool allZero(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    if (v != 0) return false;
  }
  for (; i < n; ++i) if (p[i] != 0) return false;
  return true;
}

// ---- sha256 state shared across calls: one per output file, fed in file order.

struct Sha256 {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::atomic<bool> busy{false};
  bool done = false;
  bool ok() const { return ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1; }
  ~Sha256() { EVP_MD_CTX_free(ctx); }
  void update(const uint8_t* p, size_t n) { EVP_DigestUpdate(ctx, p, n); }
};

Sha256* shaOf(const Napi::CallbackInfo& info, size_t k) {
  if (!info[k].IsExternal()) throw Napi::TypeError::New(info.Env(), "lesa_native: expected a sha256 handle");
  Sha256* h = info[k].As<Napi::External<Sha256>>().Data();
  if (h->done) throw Napi::Error::New(info.Env(), "lesa_native: sha256 handle used after its digest");
  return h;
}

// Claims a hash for one job: overlapping jobs would interleave its input.
class HashClaim {
 public:
  HashClaim(Napi::Env env, Sha256* h) : h_(h) {
    if (h_ != nullptr && h_->busy.exchange(true)) throw Napi::Error::New(env, "lesa_native: sha256 handle used by two jobs at once");
  }
  ~HashClaim() { if (h_ != nullptr) h_->busy.store(false); }
 private:
  Sha256* h_;
};

Napi::Value Sha256New(const Napi::CallbackInfo& info) {
  checkArgs(info, "sha256New", "");
  auto* h = new Sha256();
  if (!h->ok()) {
    delete h;
    throw Napi::Error::New(info.Env(), "lesa_native: OpenSSL could not start a sha256");
  }
  return Napi::External<Sha256>::New(info.Env(), h, [](Napi::Env, Sha256* p) { delete p; });
}

Napi::Value Sha256Digest(const Napi::CallbackInfo& info) {
  if (info.Length() != 1) throw Napi::TypeError::New(info.Env(), "lesa_native.sha256Digest: expected 1 argument");
  Sha256* h = shaOf(info, 0);
  if (h->busy.load()) throw Napi::Error::New(info.Env(), "lesa_native: sha256 digest while a job still feeds it");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(h->ctx, md, &len);
  h->done = true;
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) { s += hex[md[i] >> 4]; s += hex[md[i] & 15]; }
  return Napi::String::New(info.Env(), s);
}

// A job whose failure may be a system call's: rejects with an Error carrying code/syscall,
// like Node's own fs errors, so that ENOSPC is recognised as a full disk.
class IoWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;

 protected:
  void failSys(const char* syscall, int err) {
    syscall_ = syscall;
    errno_ = err;
    SetError(std::string(uv_err_name(-err)) + ": " + std::strerror(err) + ", " + syscall);
  }
  void OnError(const Napi::Error& e) override {
    if (errno_ != 0) {
      e.Value().Set("code", uv_err_name(-errno_));
      e.Value().Set("errno", -errno_);
      e.Value().Set("syscall", syscall_);
    }
    deferred_.Reject(e.Value());
  }

 private:
  const char* syscall_ = "";
  int errno_ = 0;
};

// sha256Update(hash, bytes): Promise<void>
class HashWorker : public IoWorker {
 public:
  HashWorker(Napi::Env env, Sha256* h, const uint8_t* p, size_t n) : IoWorker(env), claim_(env, h), h_(h), p_(p), n_(n) {}
  void Execute() override { h_->update(p_, n_); }

 private:
  HashClaim claim_;
  Sha256* h_;
  const uint8_t* p_;
  size_t n_;
};

Napi::Value Sha256Update(const Napi::CallbackInfo& info) {
  if (info.Length() != 2) throw Napi::TypeError::New(info.Env(), "lesa_native.sha256Update: expected 2 arguments");
  Sha256* h = shaOf(info, 0);
  checkValue(info.Env(), info[1], 'u', "sha256Update argument 1");
  auto* w = new HashWorker(info.Env(), h, dataOf<uint8_t>(info[1]), lengthOf(info[1]));
  w->keep(info[0].As<Napi::Object>());
  w->keep(info[1]);
  return w->start();
}

// countNonFiniteRaw(bytes, dtype): Promise<number>
class CountWorker : public IoWorker {
 public:
  CountWorker(Napi::Env env, const uint8_t* p, size_t n, Check c) : IoWorker(env), p_(p), n_(n), c_(c) {}
  void Execute() override { bad_ = countNonFiniteRaw(p_, n_, c_); }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(bad_))); }

 private:
  const uint8_t* p_;
  size_t n_;
  Check c_;
  size_t bad_ = 0;
};

Napi::Value CountNonFiniteRawJs(const Napi::CallbackInfo& info) {
  checkArgs(info, "countNonFiniteRaw", "us");
  Check c = checkOf(info.Env(), info[1].As<Napi::String>());
  size_t n = lengthOf(info[0]);
  if (n % elemSize(c) != 0) throw Napi::RangeError::New(info.Env(), "lesa_native: byte length not a multiple of the dtype size");
  auto* w = new CountWorker(info.Env(), dataOf<uint8_t>(info[0]), n, c);
  w->keep(info[0]);
  return w->start();
}

// copySpans(hash, dstFd, spans: Float64Array [srcFd, srcOffset, dstOffset, length] * n,
//           checks: Uint8Array n (0 none, 1 F64, 2 F32, 3 F16, 4 BF16)): Promise<{ nonFinite: Float64Array n, holes }>
// The spans are copied in order, as one stream of chunks: chunk i is read into a buffer
// (pread), handed to a thread that checks and hashes it while the kernel copies the same
// bytes (copy_file_range; pwrite of the buffer where the kernel cannot) and chunk i+1 is
// read. One call for a run of tensors keeps thread hand-offs per run, not per tensor. An
// all-zero chunk is not written: it stays a hole, which reads back as the same zeros (the
// caller sizes the file when it closes it).
struct Span {
  int src;
  int64_t srcOff, dstOff;
  size_t len;
  Check check;
};

constexpr Check kChecks[] = {Check::None, Check::F64, Check::F32, Check::F16, Check::BF16};

class CopyWorker : public IoWorker {
 public:
  CopyWorker(Napi::Env env, Sha256* h, int dst, std::vector<Span> spans)
      : IoWorker(env), claim_(env, h), h_(h), dst_(dst), spans_(std::move(spans)), bad_(spans_.size(), 0) {}

  void Execute() override {
    try {
      copy();
    } catch (const std::exception& e) {  // a thread or buffer that could not be had
      SetError(std::string("copy failed: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Object r = Napi::Object::New(Env());
    Napi::Float64Array bad = Napi::Float64Array::New(Env(), bad_.size());
    for (size_t k = 0; k < bad_.size(); ++k) bad[k] = static_cast<double>(bad_[k]);
    r.Set("nonFinite", bad);
    r.Set("holes", Napi::Boolean::New(Env(), holes_));
    deferred_.Resolve(r);
  }

 private:
  void copy() {
    size_t total = 0, biggest = 0;
    for (const Span& s : spans_) { total += s.len; biggest = std::max(biggest, s.len); }
    size_t bufBytes = std::min(biggest, kChunk);
    if (bufBytes == 0) return;
    std::unique_ptr<uint8_t[]> bufs[2] = {std::unique_ptr<uint8_t[]>(new uint8_t[bufBytes]),
                                          std::unique_ptr<uint8_t[]>(total > bufBytes ? new uint8_t[bufBytes] : nullptr)};
    std::future<size_t> pending;
    size_t pendingSpan = 0, i = 0;
    auto digest = [this](const uint8_t* p, size_t n, Check c) {
      size_t bad = countNonFiniteRaw(p, n, c);
      h_->update(p, n);
      return bad;
    };
    bool ok = true;
    for (size_t k = 0; ok && k < spans_.size(); ++k) {
      const Span& s = spans_[k];
      for (size_t at = 0; at < s.len; at += kChunk, ++i) {
        size_t n = std::min(s.len - at, kChunk);
        uint8_t* buf = bufs[i & 1].get();
        readAhead(k, at + n);
        if (!(ok = readAll(s.src, buf, n, s.srcOff + at))) break;
        if (pending.valid()) bad_[pendingSpan] += pending.get();  // keeps the hash in file order
        bool hole = allZero(buf, n);
        if (n >= (1u << 20)) {
          pending = std::async(std::launch::async, digest, buf, n, s.check);
          pendingSpan = k;
        } else {
          bad_[k] += digest(buf, n, s.check);
        }
        if (hole) { holes_ = true; continue; }
        if (!(ok = writeAll(s.src, buf, n, s.srcOff + at, s.dstOff + at))) break;
        // Start the disk writing these pages now, so the fsync at finalize waits for the
        // last chunks only, not for the whole output (a hint: errors surface at fsync).
        sync_file_range(dst_, s.dstOff + at, n, SYNC_FILE_RANGE_WRITE);
      }
    }
    if (pending.valid()) bad_[pendingSpan] += pending.get();
  }

  // Ask the kernel for the chunk after the one at (span k, byte end) while this one is
  // checked and copied, so the disk reads ahead of the copy instead of between copies.
  void readAhead(size_t k, size_t end) {
    if (end >= spans_[k].len) {
      if (++k == spans_.size()) return;
      end = 0;
    }
    const Span& s = spans_[k];
    posix_fadvise(s.src, s.srcOff + end, std::min(s.len - end, kChunk), POSIX_FADV_WILLNEED);
  }

  bool readAll(int src, uint8_t* buf, size_t n, int64_t off) {
    for (size_t done = 0; done < n;) {
      ssize_t r = pread(src, buf + done, n - done, off + done);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) { failSys("read", errno); return false; }
      if (r == 0) { SetError("the source file ended inside the tensor (it changed while lesa read it)"); return false; }
      done += r;
    }
    return true;
  }

  bool writeAll(int src, const uint8_t* buf, size_t n, int64_t srcOff, int64_t dstOff) {
    size_t done = 0;
    while (kernelCopy_ && done < n) {
      loff_t in = srcOff + done, out = dstOff + done;
      ssize_t r = copy_file_range(src, &in, dst_, &out, n - done, 0);
      if (r > 0) { done += r; continue; }
      if (r < 0 && errno == EINTR) continue;
      // Not across these filesystems / file kinds, or nothing copied: the buffer holds the bytes.
      if (r == 0 || errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EBADF) { kernelCopy_ = false; break; }
      failSys("copy_file_range", errno);
      return false;
    }
    while (done < n) {
      ssize_t r = pwrite(dst_, buf + done, n - done, dstOff + done);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) { failSys("write", errno); return false; }
      if (r == 0) { failSys("write", ENOSPC); return false; }
      done += r;
    }
    return true;
  }

  HashClaim claim_;
  Sha256* h_;
  int dst_;
  std::vector<Span> spans_;
  std::vector<size_t> bad_;
  bool kernelCopy_ = true;
  bool holes_ = false;
};

Napi::Value CopySpans(const Napi::CallbackInfo& info) {
  if (info.Length() != 4) throw Napi::TypeError::New(info.Env(), "lesa_native.copySpans: expected 4 arguments");
  Napi::Env env = info.Env();
  Sha256* h = shaOf(info, 0);
  checkValue(env, info[1], 'n', "copySpans argument 1");
  checkValue(env, info[2], 'd', "copySpans argument 2");
  checkValue(env, info[3], 'u', "copySpans argument 3");
  int64_t dst = info[1].As<Napi::Number>().Int64Value();
  size_t n = lengthOf(info[3]);
  requireLength(env, info[2], product(env, {n, 4}), "spans");
  const double* v = dataOf<double>(info[2]);
  const uint8_t* checks = dataOf<uint8_t>(info[3]);
  if (dst > 0x7fffffff) throw Napi::RangeError::New(env, "lesa_native: file descriptor out of range");
  std::vector<Span> spans;
  for (size_t k = 0; k < n; ++k) {
    const double* e = v + 4 * k;
    for (int j = 0; j < 4; ++j) {
      if (!(e[j] >= 0 && e[j] <= 9007199254740991.0 && e[j] == static_cast<double>(static_cast<int64_t>(e[j])))) {
        throw Napi::RangeError::New(env, "lesa_native: span fields must be non-negative safe integers");
      }
    }
    if (e[0] > 0x7fffffff) throw Napi::RangeError::New(env, "lesa_native: file descriptor out of range");
    if (checks[k] > 4) throw Napi::RangeError::New(env, "lesa_native: unknown check code");
    Span s{int(e[0]), int64_t(e[1]), int64_t(e[2]), size_t(e[3]), kChecks[checks[k]]};
    if (s.len % elemSize(s.check) != 0) throw Napi::RangeError::New(env, "lesa_native: byte length not a multiple of the dtype size");
    spans.push_back(s);
  }
  auto* w = new CopyWorker(env, h, int(dst), std::move(spans));
  w->keep(info[0].As<Napi::Object>());
  return w->start();
}

}  // namespace

void registerCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("sha256New", Napi::Function::New(env, Sha256New, "sha256New"));
  exports.Set("sha256Update", Napi::Function::New(env, Sha256Update, "sha256Update"));
  exports.Set("sha256Digest", Napi::Function::New(env, Sha256Digest, "sha256Digest"));
  exports.Set("countNonFiniteRaw", Napi::Function::New(env, CountNonFiniteRawJs, "countNonFiniteRaw"));
  exports.Set("copySpans", Napi::Function::New(env, CopySpans, "copySpans"));
}

}  // namespace lesa
