// RamCache: the block scheme of cache_keys.h held in memory.
//
// Structure: roots (one per model fingerprint + KV layout) own a sorted map of their first-level nodes; each
// full node (kCacheBlockTokens tokens) owns a sorted map of its children; tails (shorter nodes) are leaves.
// A hash map from node key to node gives the O(1)-per-block chain walk; the sorted child maps find, at the
// point where the chain stops, the child sharing the longest prefix with the rest of the query in
// O(log fan-out) (in sorted order the best match is next to the query's insertion point).
//
// An entry is its list of nodes; each node keeps the set of entries using it (its reference count). Entries
// sit on an LRU list; evicting one releases its nodes, and a node is freed when no entry uses it.
//
// Byte accounting (size_bytes()): every node counts its KV bytes + 4 bytes per token + kNodeOverhead; every
// entry counts kEntryOverhead + kRefOverhead per node it references; every root counts kRootOverhead plus its
// fingerprint. The overheads are estimates of the allocator-level cost of the containers involved (hash map
// slots and nodes, map nodes, the LRU list node, set nodes, vector headers), rounded up. A store computes the
// bytes it adds, evicts until they fit, then inserts, all under the lock, so the count never exceeds the
// capacity. A lookup copies block bytes out after releasing the lock; a block evicted meanwhile stays alive
// (shared_ptr) until that copy ends, as part of the caller's result rather than of the cache.
#include <algorithm>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "cache/cache_keys.h"
#include "llama_crab/cache.h"

namespace llama_crab {

using cache_detail::Key128;
using cache_detail::Key128Hash;
using cache_detail::TokenSpanLess;

namespace {

struct Node;
struct Entry;
using ChildMap = std::map<std::span<const Token>, Node*, TokenSpanLess>;

struct Root {
    Key128 key;
    std::string fingerprint;
    KvLayout layout;
    ChildMap children;
    size_t n_entries = 0;
};

struct Node {
    Key128 key;
    Root* root = nullptr;
    Node* parent = nullptr;  // nullptr: a first-level node, child of root
    std::vector<Token> tokens;
    std::shared_ptr<const std::vector<uint8_t>> kv;
    ChildMap children;
    std::unordered_set<Entry*> users;
    size_t bytes = 0;
};

struct Entry {
    Key128 key;
    Root* root = nullptr;
    std::vector<Node*> nodes;
    size_t n_tokens = 0;
    size_t bytes = 0;  // entry overhead + references (nodes are counted on their own)
    std::list<Entry*>::iterator lru;
};

constexpr size_t kNodeOverhead = sizeof(Node) + 160;    // hash-map node + slot, parent map node, shared_ptr block, vector headers
constexpr size_t kEntryOverhead = sizeof(Entry) + 128;  // hash-map node + slot, LRU list node
constexpr size_t kRefOverhead = 64;                     // pointer in Entry::nodes + node in Node::users
constexpr size_t kRootOverhead = sizeof(Root) + 160;    // map node, fingerprint index node

size_t node_bytes(size_t n_tokens, const KvLayout& layout) {
    return kNodeOverhead + n_tokens * (sizeof(Token) + layout.token_bytes());
}

}  // namespace

struct RamCache::Impl {
    size_t capacity = 0;
    mutable std::mutex mu;
    size_t size = 0;
    std::map<Key128, std::unique_ptr<Root>> roots;
    std::unordered_multimap<std::string, Root*> roots_by_fp;
    std::unordered_map<Key128, std::unique_ptr<Node>, Key128Hash> nodes;
    std::unordered_map<Key128, std::unique_ptr<Entry>, Key128Hash> entries;
    std::list<Entry*> lru;  // front = most recently used
    CacheStats stats;

    static size_t root_bytes(const std::string& fp) { return kRootOverhead + fp.size(); }

    void touch(Entry* e) { lru.splice(lru.begin(), lru, e->lru); }

    void free_node(Node* n) {
        ChildMap& siblings = n->parent ? n->parent->children : n->root->children;
        siblings.erase(std::span<const Token>(n->tokens));
        size -= n->bytes;
        nodes.erase(n->key);  // destroys n
    }

    void remove_root(Root* r) {
        auto range = roots_by_fp.equal_range(r->fingerprint);
        for (auto it = range.first; it != range.second; ++it) {
            if (it->second == r) {
                roots_by_fp.erase(it);
                break;
            }
        }
        size -= root_bytes(r->fingerprint);
        roots.erase(r->key);
    }

    void drop_entry(Entry* e) {
        // Deepest first: a node's users include all users of its children, so children empty out first.
        for (auto it = e->nodes.rbegin(); it != e->nodes.rend(); ++it) {
            Node* n = *it;
            n->users.erase(e);
            if (n->users.empty()) free_node(n);
        }
        size -= e->bytes;
        lru.erase(e->lru);
        Root* r = e->root;
        entries.erase(e->key);  // destroys e
        if (--r->n_entries == 0) remove_root(r);
    }

    void evict_lru() {
        Entry* victim = lru.back();
        drop_entry(victim);
        ++stats.evictions;
    }

    // The node reached by following `key` from `parent` (nullptr = from root r) with exactly these tokens.
    Node* find_child(Root* r, Node* parent, const Key128& key, std::span<const Token> toks) {
        auto it = nodes.find(key);
        if (it == nodes.end()) return nullptr;
        Node* n = it->second.get();
        if (n->root != r || n->parent != parent || !std::equal(n->tokens.begin(), n->tokens.end(), toks.begin(), toks.end())) {
            return nullptr;  // a hash collision: treat as absent
        }
        return n;
    }

    struct Match {
        Root* root = nullptr;
        std::vector<Node*> nodes;  // the last one may be used partially
        size_t n_tokens = 0;
        size_t last_used = 0;  // tokens used of the last node
    };

    Match match(Root* r, const std::vector<Token>& q) {
        Match m;
        m.root = r;
        Node* cur = nullptr;
        Key128 cur_key = r->key;
        size_t at = 0;
        while (q.size() - at >= kCacheBlockTokens) {
            std::span<const Token> blk(q.data() + at, kCacheBlockTokens);
            Node* n = find_child(r, cur, cache_detail::node_key(cur_key, blk.data(), blk.size()), blk);
            if (!n) break;
            m.nodes.push_back(n);
            cur = n;
            cur_key = n->key;
            at += kCacheBlockTokens;
        }
        m.n_tokens = at;
        m.last_used = kCacheBlockTokens;
        const size_t rest = std::min(kCacheBlockTokens, q.size() - at);
        if (rest == 0) return m;
        // The chain stops here: the best partial match is a neighbour of the query in sorted child order.
        const ChildMap& kids = cur ? cur->children : r->children;
        std::span<const Token> qr(q.data() + at, rest);
        auto it = kids.lower_bound(qr);
        Node* best = nullptr;
        size_t best_len = 0;
        auto consider = [&](ChildMap::const_iterator c) {
            const size_t l = cache_detail::common_prefix(c->first, qr);
            if (l > best_len) {
                best_len = l;
                best = c->second;
            }
        };
        if (it != kids.end()) consider(it);
        if (it != kids.begin()) consider(std::prev(it));
        if (best) {
            m.nodes.push_back(best);
            m.n_tokens += best_len;
            m.last_used = best_len;
        }
        return m;
    }
};

RamCache::RamCache(size_t capacity_bytes) : impl_(std::make_unique<Impl>()) { impl_->capacity = capacity_bytes; }
RamCache::~RamCache() = default;

Status RamCache::store(const std::vector<Token>& tokens, const CacheEntry& entry) {
    LC_ASSIGN_OR_RETURN(const size_t n, cache_detail::check_store_args(tokens, entry));
    const SequenceState& st = entry.state;
    const KvLayout& layout = st.layout;
    const Key128 rkey = cache_detail::root_key(st.model_fingerprint, layout);
    const std::vector<Key128> keys = cache_detail::chain_keys(rkey, tokens.data(), n);
    const size_t tb = layout.token_bytes();

    Impl& c = *impl_;
    std::lock_guard<std::mutex> lock(c.mu);

    // Resolve the nodes that already exist (a prefix of the chain).
    auto rit = c.roots.find(rkey);
    Root* root = rit == c.roots.end() ? nullptr : rit->second.get();
    std::vector<Node*> existing;
    if (root) {
        Node* parent = nullptr;
        for (size_t i = 0; i < keys.size(); ++i) {
            const size_t at = i * kCacheBlockTokens;
            std::span<const Token> toks(tokens.data() + at, std::min(kCacheBlockTokens, n - at));
            Node* nd = c.find_child(root, parent, keys[i], toks);
            if (!nd) {
                if (c.nodes.count(keys[i])) {
                    return make_error(ErrorCode::kInternal, fmt::format("ram cache: block key collision at block {}", i));
                }
                break;
            }
            existing.push_back(nd);
            parent = nd;
        }
    }
    const uint64_t logical = cache_detail::state_bytes(n, layout);
    if (existing.size() == keys.size()) {
        auto eit = c.entries.find(keys.back());
        if (eit != c.entries.end()) {  // already stored: refresh
            c.touch(eit->second.get());
            ++c.stats.stores;
            c.stats.bytes_in += logical;
            return {};
        }
    }

    // Bytes this entry needs in total, and the part not already held.
    size_t total = kEntryOverhead + keys.size() * kRefOverhead;
    size_t added = total;
    for (size_t i = 0; i < keys.size(); ++i) {
        const size_t nt = std::min(kCacheBlockTokens, n - i * kCacheBlockTokens);
        total += node_bytes(nt, layout);
        if (i >= existing.size()) added += node_bytes(nt, layout);
    }
    total += Impl::root_bytes(st.model_fingerprint);
    if (!root) added += Impl::root_bytes(st.model_fingerprint);
    if (total > c.capacity) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("ram cache: an entry of {} tokens needs {} bytes, more than the capacity of {} bytes",
                                      n, total, c.capacity));
    }

    // Create the entry and pin the shared nodes (and the root) so eviction cannot free them, then evict.
    if (!root) {
        auto r = std::make_unique<Root>();
        r->key = rkey;
        r->fingerprint = st.model_fingerprint;
        r->layout = layout;
        root = r.get();
        c.roots.emplace(rkey, std::move(r));
        c.roots_by_fp.emplace(st.model_fingerprint, root);
    }
    auto e = std::make_unique<Entry>();
    Entry* ep = e.get();
    ep->key = keys.back();
    ep->root = root;
    ep->n_tokens = n;
    ep->bytes = kEntryOverhead + keys.size() * kRefOverhead;
    ++root->n_entries;
    for (Node* nd : existing) nd->users.insert(ep);
    ep->nodes = existing;
    while (c.size + added > c.capacity && !c.lru.empty()) c.evict_lru();
    if (c.size + added > c.capacity) {  // cannot happen: total <= capacity and everything else is evictable
        for (Node* nd : existing) nd->users.erase(ep);
        if (--root->n_entries == 0) c.remove_root(root);
        return make_error(ErrorCode::kInternal, "ram cache: accounting error while making room");
    }

    // Insert the new nodes.
    Node* parent = existing.empty() ? nullptr : existing.back();
    for (size_t i = existing.size(); i < keys.size(); ++i) {
        const size_t at = i * kCacheBlockTokens;
        const size_t nt = std::min(kCacheBlockTokens, n - at);
        auto nd = std::make_unique<Node>();
        nd->key = keys[i];
        nd->root = root;
        nd->parent = parent;
        nd->tokens.assign(tokens.begin() + (ptrdiff_t)at, tokens.begin() + (ptrdiff_t)(at + nt));
        nd->kv = std::make_shared<const std::vector<uint8_t>>(st.kv.begin() + (ptrdiff_t)(at * tb),
                                                              st.kv.begin() + (ptrdiff_t)((at + nt) * tb));
        nd->bytes = node_bytes(nt, layout);
        nd->users.insert(ep);
        Node* raw = nd.get();
        ChildMap& siblings = parent ? parent->children : root->children;
        siblings.emplace(std::span<const Token>(raw->tokens), raw);
        c.nodes.emplace(keys[i], std::move(nd));
        ep->nodes.push_back(raw);
        parent = raw;
    }
    c.lru.push_front(ep);
    ep->lru = c.lru.begin();
    c.entries.emplace(ep->key, std::move(e));
    c.size += added;
    ++c.stats.stores;
    c.stats.bytes_in += logical;
    return {};
}

std::optional<CacheEntry> RamCache::lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint) {
    return lookup_impl(tokens, model_fingerprint, nullptr);
}

std::optional<CacheEntry> RamCache::lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                           const KvLayout& layout) {
    return lookup_impl(tokens, model_fingerprint, &layout);
}

std::optional<CacheEntry> RamCache::lookup_impl(const std::vector<Token>& tokens, const std::string& fp,
                                                const KvLayout* layout) {
    Impl& c = *impl_;
    std::vector<std::shared_ptr<const std::vector<uint8_t>>> blocks;
    KvLayout lay;
    size_t n = 0, last_used = 0;
    {
        std::lock_guard<std::mutex> lock(c.mu);
        std::vector<Root*> candidates;
        if (layout) {
            auto it = c.roots.find(cache_detail::root_key(fp, *layout));
            if (it != c.roots.end()) candidates.push_back(it->second.get());
        } else {
            auto range = c.roots_by_fp.equal_range(fp);
            for (auto it = range.first; it != range.second; ++it) candidates.push_back(it->second);
        }
        Impl::Match best;
        for (Root* r : candidates) {
            Impl::Match m = c.match(r, tokens);
            if (m.n_tokens > best.n_tokens) best = std::move(m);
        }
        if (best.n_tokens == 0) {
            ++c.stats.misses;
            return std::nullopt;
        }
        // Refresh an entry that holds every block used (any user of the deepest one does).
        c.touch(*best.nodes.back()->users.begin());
        lay = best.root->layout;
        n = best.n_tokens;
        last_used = best.last_used;
        for (Node* nd : best.nodes) blocks.push_back(nd->kv);
        ++c.stats.hits;
        c.stats.hit_tokens += n;
        c.stats.bytes_out += cache_detail::state_bytes(n, lay);
    }
    CacheEntry out;
    out.n_past = (int32_t)n;
    out.state.model_fingerprint = fp;
    out.state.layout = lay;
    out.state.tokens.assign(tokens.begin(), tokens.begin() + (ptrdiff_t)n);
    out.state.positions.resize(n);
    for (size_t i = 0; i < n; ++i) out.state.positions[i] = (Pos)i;
    const size_t tb = lay.token_bytes();
    out.state.kv.resize(n * tb);
    uint8_t* dst = out.state.kv.data();
    for (size_t i = 0; i < blocks.size(); ++i) {
        const size_t bytes = (i + 1 == blocks.size()) ? last_used * tb : blocks[i]->size();
        std::memcpy(dst, blocks[i]->data(), bytes);
        dst += bytes;
    }
    return out;
}

size_t RamCache::size_bytes() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->size;
}

size_t RamCache::capacity_bytes() const { return impl_->capacity; }

size_t RamCache::len() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->entries.size();
}

size_t RamCache::n_blocks() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->nodes.size();
}

Status RamCache::clear() {
    Impl& c = *impl_;
    std::lock_guard<std::mutex> lock(c.mu);
    c.lru.clear();
    c.entries.clear();
    c.nodes.clear();
    c.roots_by_fp.clear();
    c.roots.clear();
    c.size = 0;
    return {};
}

CacheStats RamCache::stats() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->stats;
}

}  // namespace llama_crab
