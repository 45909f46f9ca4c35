// Incremental SHA-256 (OpenSSL EVP underneath).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace llama_crab {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    template <typename T>
    void update_pod(const T& v) { update(&v, sizeof(T)); }
    // Finishes the hash; the object must not be updated afterwards.
    std::string hex_digest();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(const void* data, size_t size);

}  // namespace llama_crab
