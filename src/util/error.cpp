#include "llama_crab/error.h"

namespace llama_crab {

const char* error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::kOk: return "ok";
        case ErrorCode::kIo: return "io";
        case ErrorCode::kInvalidFormat: return "invalid_format";
        case ErrorCode::kUnsupported: return "unsupported";
        case ErrorCode::kInvalidArgument: return "invalid_argument";
        case ErrorCode::kMissingTensor: return "missing_tensor";
        case ErrorCode::kShapeMismatch: return "shape_mismatch";
        case ErrorCode::kNoKvSpace: return "no_kv_space";
        case ErrorCode::kInvalidBatch: return "invalid_batch";
        case ErrorCode::kStateMismatch: return "state_mismatch";
        case ErrorCode::kChecksum: return "checksum";
        case ErrorCode::kCancelled: return "cancelled";
        case ErrorCode::kInternal: return "internal";
    }
    return "unknown";
}

}  // namespace llama_crab
