// Error and Result<T>: how failures cross the public API.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace llama_crab {

enum class ErrorCode : uint32_t {
    kOk = 0,
    kIo,                // a file could not be opened, read, mapped or written
    kInvalidFormat,     // bytes that do not parse: bad magic, out-of-bounds offset, truncated data
    kUnsupported,       // a valid file using something we do not implement (architecture, type, version)
    kInvalidArgument,   // a caller-supplied value out of range
    kMissingTensor,     // the architecture table needs a tensor the file lacks
    kShapeMismatch,     // a tensor has the wrong shape or type
    kNoKvSpace,         // the KV cache has no free cells for a batch
    kInvalidBatch,      // empty batch, out-of-order position, bad sequence id
    kStateMismatch,     // a saved state does not fit this model/context
    kChecksum,          // a checksum did not verify
    kCancelled,
    kInternal,
};

const char* error_code_name(ErrorCode code);

struct Error {
    ErrorCode code = ErrorCode::kInternal;
    std::string message;

    std::string to_string() const { return std::string(error_code_name(code)) + ": " + message; }
};

// A value or an Error. Deliberately small: std::expected is not usable with clang-14 + libstdc++ 12.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : data_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return data_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(data_); }
    const T& value() const& { return std::get<0>(data_); }
    T&& value() && { return std::get<0>(std::move(data_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { return std::get<1>(data_); }

private:
    std::variant<T, Error> data_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }

private:
    Error error_;
    bool ok_ = true;
};

using Status = Result<void>;

inline Error make_error(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace llama_crab

// Propagate an error from an expression yielding a Result.
#define LC_TRY(expr)                                   \
    do {                                               \
        auto lc_try_result_ = (expr);                  \
        if (!lc_try_result_.ok()) return lc_try_result_.error(); \
    } while (0)

#define LC_CONCAT_INNER(a, b) a##b
#define LC_CONCAT(a, b) LC_CONCAT_INNER(a, b)
// Assign the value of a Result to `lhs`, or return its error.
#define LC_ASSIGN_OR_RETURN(lhs, expr) LC_ASSIGN_OR_RETURN_IMPL(LC_CONCAT(lc_res_, __LINE__), lhs, expr)
#define LC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
    auto tmp = (expr);                           \
    if (!tmp.ok()) return tmp.error();           \
    lhs = std::move(tmp).value()
