#include "chat/jinja.h"

#include <new>

#include <nlohmann/json.hpp>

#include "chat/jinja_parser.h"
#include "chat/jinja_text.h"

namespace llama_crab::jinja {

Error to_error(const JinjaError& e) {
    ErrorCode code = ErrorCode::kInvalidArgument;
    if (e.kind == ErrorKind::kSyntax) code = ErrorCode::kInvalidFormat;
    else if (e.kind == ErrorKind::kUnsupported) code = ErrorCode::kUnsupported;
    std::string msg;
    if (e.line > 0) msg = std::string("line ") + std::to_string(e.line) + ": ";
    msg += error_kind_name(e.kind);
    msg += ": ";
    msg += e.message;
    return Error{code, std::move(msg)};
}

namespace {

size_t first_invalid_utf8(std::string_view s) {
    // Binary search is not possible; find the first bad byte by validating growing prefixes per code point.
    size_t i = 0;
    while (i < s.size()) {
        unsigned char b = static_cast<unsigned char>(s[i]);
        size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || i + len > s.size() || !text::utf8_valid(s.substr(i, len))) return i;
        i += len;
    }
    return s.size();
}

}  // namespace

Result<std::shared_ptr<const TemplateAst>> parse(std::string_view source) {
    if (!text::utf8_valid(source)) {
        return Error{ErrorCode::kInvalidFormat,
                     "template is not valid UTF-8 (byte offset " + std::to_string(first_invalid_utf8(source)) + ")"};
    }
    try {
        return parse_template(source);
    } catch (const JinjaError& e) {
        return to_error(e);
    } catch (const std::bad_alloc&) {
        return Error{ErrorCode::kInternal, "out of memory while parsing the template"};
    } catch (const std::exception& e) {
        return Error{ErrorCode::kInternal, std::string("template parser failure: ") + e.what()};
    }
}

Result<std::string> render(const TemplateAst& ast, const RenderContext& ctx) {
    try {
        Interp interp(ctx);
        return interp.render(ast);
    } catch (const JinjaError& e) {
        return to_error(e);
    } catch (const std::bad_alloc&) {
        return Error{ErrorCode::kInternal, "out of memory while rendering the template"};
    } catch (const std::exception& e) {
        return Error{ErrorCode::kInternal, std::string("template renderer failure: ") + e.what()};
    }
}

namespace {

template <typename Json>
Value from_json_impl(const Json& j, int depth) {
    if (depth > kMaxValueDepth) raise(ErrorKind::kLimit, "JSON data nested too deeply");
    switch (j.type()) {
        case nlohmann::json::value_t::null: return Value::none();
        case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
        case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
        case nlohmann::json::value_t::number_unsigned: {
            uint64_t u = j.template get<uint64_t>();
            if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
            return Value::integer(static_cast<int64_t>(u));
        }
        case nlohmann::json::value_t::number_float: return Value::number(j.template get<double>());
        case nlohmann::json::value_t::string: {
            const auto& s = j.template get_ref<const std::string&>();
            if (!text::utf8_valid(s)) raise(ErrorKind::kValue, "JSON string is not valid UTF-8");
            return Value::string(s);
        }
        case nlohmann::json::value_t::array: {
            std::vector<Value> items;
            items.reserve(j.size());
            for (const auto& x : j) items.push_back(from_json_impl(x, depth + 1));
            return Value::list(std::move(items));
        }
        case nlohmann::json::value_t::object: {
            DictPtr d = make_dict();
            for (auto it = j.begin(); it != j.end(); ++it) {
                if (!text::utf8_valid(it.key())) raise(ErrorKind::kValue, "JSON key is not valid UTF-8");
                d->set(Value::string(it.key()), from_json_impl(it.value(), depth + 1));
            }
            return Value::dict(std::move(d));
        }
        default: raise(ErrorKind::kValue, "unsupported JSON value (binary or discarded)");
    }
}

}  // namespace

Value from_json(const nlohmann::ordered_json& j) { return from_json_impl(j, 0); }
Value from_json(const nlohmann::json& j) { return from_json_impl(j, 0); }

}  // namespace llama_crab::jinja
