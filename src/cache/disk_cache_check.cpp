// DiskCache::check_consistency: the whole index against itself and the block files (for tests and tools).
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "cache/block_file.h"
#include "cache/disk_cache_rows.h"

namespace llama_crab::cache_detail {

std::string consistency_problem(Db& db, const CacheFolder& folder, size_t capacity) {
    struct B {
        Key128 key, parent;
        int64_t n_tokens, refcount, size;
        std::string file;
        int64_t refs = 0;
        size_t token_bytes = 0;
        std::vector<Token> tokens = {};
    };
    std::unordered_map<int64_t, B> blocks;
    {
        Stmt& s = db.q("SELECT id, key, parent, n_tokens, refcount, size, file, tokens FROM blocks");
        while (s.step()) {
            if (!row_names_its_file(s.col_blob(1), s.col_text(6))) return fmt::format("block {}: stored file name is not derived from its key", s.col_int(0));
            B b{key_of(s.col_blob(1)), key_of(s.col_blob(2)), s.col_int(3), s.col_int(4), s.col_int(5), s.col_text(6)};
            const std::string tb = s.col_blob(7);
            if (!decode_tokens_sortable(tb.data(), tb.size(), &b.tokens) || (int64_t)b.tokens.size() != b.n_tokens) {
                return fmt::format("block {}: tokens column does not hold {} tokens", s.col_int(0), b.n_tokens);
            }
            blocks[s.col_int(0)] = std::move(b);
        }
        s.reset();
    }
    std::unordered_map<Key128, KvLayout, Key128Hash> roots;
    {
        Stmt& s = db.q("SELECT key, n_layer, n_head_kv, head_dim, kv_type FROM roots");
        while (s.step()) {
            roots[key_of(s.col_blob(0))] = KvLayout{(uint32_t)s.col_int(1), (uint32_t)s.col_int(2),
                                                    (uint32_t)s.col_int(3), (uint32_t)s.col_int(4)};
        }
        s.reset();
    }
    struct E {
        int64_t id;
        Key128 key, root;
        int64_t n_tokens, size;
    };
    std::vector<E> entries;
    {
        Stmt& s = db.q("SELECT id, key, root, n_tokens, size FROM entries");
        while (s.step()) entries.push_back(E{s.col_int(0), key_of(s.col_blob(1)), key_of(s.col_blob(2)), s.col_int(3), s.col_int(4)});
        s.reset();
    }
    int64_t n_refs = 0;
    for (const E& e : entries) {
        auto rit = roots.find(e.root);
        if (rit == roots.end()) return fmt::format("entry {} has no root row", e.id);
        std::vector<std::pair<int64_t, int64_t>> chain;
        Stmt& s = db.q("SELECT idx, block_id FROM entry_blocks WHERE entry_id=?1 ORDER BY idx");
        s.bind(1, e.id);
        while (s.step()) chain.emplace_back(s.col_int(0), s.col_int(1));
        s.reset();
        if (chain.empty()) return fmt::format("entry {} has no blocks", e.id);
        Key128 parent = e.root;
        int64_t tokens = 0, size = 0;
        for (size_t i = 0; i < chain.size(); ++i) {
            if (chain[i].first != (int64_t)i) return fmt::format("entry {}: chain index {} at position {}", e.id, chain[i].first, i);
            auto bit = blocks.find(chain[i].second);
            if (bit == blocks.end()) return fmt::format("entry {}: block {} missing", e.id, chain[i].second);
            B& b = bit->second;
            if (b.parent != parent) return fmt::format("entry {}: block {} has the wrong parent", e.id, chain[i].second);
            if (i + 1 < chain.size() && b.n_tokens != (int64_t)kCacheBlockTokens) {
                return fmt::format("entry {}: inner block {} holds {} tokens", e.id, chain[i].second, b.n_tokens);
            }
            b.refs++;
            b.token_bytes = rit->second.token_bytes();
            parent = b.key;
            tokens += b.n_tokens;
            size += b.size;
        }
        if (parent != e.key) return fmt::format("entry {}: key is not its last block's key", e.id);
        if (tokens != e.n_tokens) return fmt::format("entry {}: {} tokens in blocks, {} recorded", e.id, tokens, e.n_tokens);
        if (size != e.size) return fmt::format("entry {}: {} bytes in blocks, {} recorded", e.id, size, e.size);
        n_refs += (int64_t)chain.size();
    }
    {
        Stmt& s = db.q("SELECT COUNT(*) FROM entry_blocks");
        s.step();
        const int64_t all = s.col_int(0);
        s.reset();
        if (all != n_refs) return fmt::format("{} entry_blocks rows, {} belong to entries", all, n_refs);
    }
    int64_t total = (int64_t)entries.size() * kEntryRowBytes + n_refs * kRefRowBytes;
    std::unordered_set<std::string> files;
    for (const auto& [id, b] : blocks) {
        if (b.refcount != b.refs) return fmt::format("block {}: refcount {}, {} references", id, b.refcount, b.refs);
        if (b.refs == 0) return fmt::format("block {} is not used by any entry", id);
        auto bytes = read_block_file(folder.blocks_fd(), b.file);
        if (!bytes.ok()) return fmt::format("block {}: {}", id, bytes.error().message);
        if ((int64_t)bytes->size() != b.size) return fmt::format("block {}: file has {} bytes, row says {}", id, bytes->size(), b.size);
        std::vector<uint8_t> raw((size_t)b.n_tokens * b.token_bytes);
        auto ok = decode_block_file(bytes->data(), bytes->size(), BlockIdentity{b.key, b.parent, b.tokens}, raw.size(), raw.data());
        if (!ok.ok()) return fmt::format("block {}: {}", id, ok.error().message);
        files.insert(b.file);
        total += block_file_bytes(b.size) + block_row_bytes(b.n_tokens);
    }
    for (const std::string& name : CacheFolder::list(folder.blocks_fd())) {
        if (!files.count(name)) return fmt::format("orphan block file {}/blocks/{}", folder.dir(), name);
    }
    if (meta_get(db, "total_bytes") != total) return fmt::format("meta total_bytes {} but the rows add up to {}", meta_get(db, "total_bytes"), total);
    if (meta_get(db, "n_entries") != (int64_t)entries.size()) return "meta n_entries is wrong";
    if (meta_get(db, "n_blocks") != (int64_t)blocks.size()) return "meta n_blocks is wrong";
    if (total > (int64_t)capacity) return fmt::format("{} bytes held, over the capacity of {}", total, capacity);
    return "";
}

}  // namespace llama_crab::cache_detail
