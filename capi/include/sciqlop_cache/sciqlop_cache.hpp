// sciqlop-cache: header-only C++20 interface over the C ABI (sciqlop_cache.h).
//
//   #include "sciqlop_cache/sciqlop_cache.hpp"
//   Cache cache(".cache/", /*max_size=*/1'000'000'000);
//   cache.set("key", std::vector<char>{'a', 'b', 'c'});
//   cache.set("key", data, 60s, "mytag");
//   if (auto v = cache.get("key")) use(v->data(), v->size());
//
// Types: Cache, Index, FanoutCache, FanoutIndex (in namespace sciqlop_cache, and in
// the global namespace unless SCIQLOP_CACHE_NO_GLOBAL_NAMES is defined), Buffer,
// Transaction, Lock, KeyCursor, Error (derived from std::runtime_error).
//
// - Thread safety: every method of a store is const and safe to call from any number
//   of threads at once on one object (share it by reference or std::shared_ptr).
//   Stores are move-only; a moved-from store throws Error(SQC_STATUS_INVALID_HANDLE).
// - Errors: every failure throws sciqlop_cache::Error with the library's message (the
//   key or path involved) and code(). Destructors never throw.
// - Values: any contiguous range of 1-byte trivially copyable elements
//   (std::vector<char>, std::string, std::string_view, std::span<const std::byte>,
//   std::array<std::uint8_t, N>, ...); a string literal is its characters without the
//   terminating NUL.
// - Expiries are std::chrono durations (kept to the microsecond, rounded up; a zero or
//   negative duration expires the entry at once).
// - Transactions (RAII): `auto tx = cache.transaction(); ...; tx.commit();` rolls back
//   when destroyed uncommitted; everything the thread does on the store meanwhile joins
//   it; it must end on the thread that began it. `cache.transact([&] { ... })` commits
//   when the function returns and rolls back when it throws. Fanouts take a key: the
//   transaction runs on that key's shard and covers that shard's keys only.
// - Locks (RAII): `auto lk = cache.lock("name", 30s);` holds a cross-process lock until
//   destroyed or lk.release(); it expires after 30 s even if the process dies.
#pragma once

#include "../sciqlop_cache.h"

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sciqlop_cache {

/// A failure reported by the library: what() is its message, code() its status.
class Error : public std::runtime_error {
public:
    Error(sqc_status code, const std::string& message) : std::runtime_error(message), code_(code) {}

    /// The status code (SQC_STATUS_*).
    sqc_status code() const noexcept { return code_; }

    /// The status' short name (e.g. "key too long").
    const char* code_name() const noexcept { return sqc_status_name(code_); }

private:
    sqc_status code_;
};

namespace detail {

[[noreturn]] inline void throw_status(sqc_status s) {
    const char* msg = sqc_last_error();
    throw Error(s, msg && *msg ? std::string(msg) : std::string(sqc_status_name(s)));
}

inline void check(sqc_status s) {
    if (s != SQC_STATUS_OK) [[unlikely]]
        throw_status(s);
}

/// Microseconds of a duration, rounded up, clamped to [0, INT64_MAX] without overflow.
template <class Rep, class Period>
std::int64_t to_micros(std::chrono::duration<Rep, Period> d) {
    const double us = std::chrono::duration<double, std::micro>(d).count();
    if (!(us > 0)) return 0;  // also NaN
    if (us >= 9.2e18) return INT64_MAX;
    auto whole = static_cast<std::int64_t>(us);
    return static_cast<double>(whole) < us ? whole + 1 : whole;
}

template <class T>
inline constexpr bool is_char_array_v =
    std::is_array_v<T> && std::is_same_v<std::remove_cv_t<std::remove_extent_t<T>>, char>;

}  // namespace detail

/// A contiguous container of bytes: 1-byte, trivially copyable elements.
template <class T>
concept ByteContainer = std::ranges::contiguous_range<const T&> && std::ranges::sized_range<const T&> &&
                        (sizeof(std::ranges::range_value_t<const T&>) == 1) &&
                        std::is_trivially_copyable_v<std::ranges::range_value_t<const T&>> &&
                        !detail::is_char_array_v<T>;

/// What set() and add() accept as a value: a ByteContainer, or text (a string literal,
/// a const char*), taken without its terminating NUL.
template <class T>
concept Value = ByteContainer<T> || std::convertible_to<const T&, std::string_view>;

namespace detail {

template <Value V>
std::span<const std::uint8_t> value_bytes(const V& v) noexcept {
    if constexpr (ByteContainer<V>) {
        return {reinterpret_cast<const std::uint8_t*>(std::ranges::data(v)), std::ranges::size(v)};
    } else {
        std::string_view s(v);
        return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
    }
}

}  // namespace detail

/// A value read from a store: owns its bytes.
class Buffer {
public:
    Buffer() noexcept = default;
    ~Buffer() { reset(); }

    Buffer(const Buffer& o) : Buffer() { assign(o.data(), o.size()); }
    Buffer& operator=(const Buffer& o) {
        if (this != &o) {
            Buffer copy(o);
            swap(copy);
        }
        return *this;
    }
    Buffer(Buffer&& o) noexcept { swap(o); }
    Buffer& operator=(Buffer&& o) noexcept {
        if (this != &o) {
            reset();
            swap(o);
        }
        return *this;
    }

    /// The bytes (null when empty).
    const char* data() const noexcept { return data_; }
    /// Their number.
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const char* begin() const noexcept { return data_; }
    const char* end() const noexcept { return data_ + size_; }

    std::span<const std::byte> bytes() const noexcept {
        return {reinterpret_cast<const std::byte*>(data_), size_};
    }
    std::string_view view() const noexcept { return {data_, size_}; }
    std::vector<char> to_vector() const { return {data_, data_ + size_}; }
    std::string to_string() const { return std::string(view()); }

    friend bool operator==(const Buffer& a, const Buffer& b) noexcept { return a.view() == b.view(); }

    void swap(Buffer& o) noexcept {
        std::swap(own_, o.own_);
        std::swap(lib_, o.lib_);
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
    }

    /// Internal: fills the buffer with a copy of [p, p + n); false when out of memory.
    bool assign_nothrow(const void* p, std::size_t n) noexcept {
        reset();
        if (n == 0) return true;
        own_.reset(static_cast<char*>(std::malloc(n)));
        if (!own_) return false;
        std::memcpy(own_.get(), p, n);
        data_ = own_.get();
        size_ = n;
        return true;
    }

    /// Internal: takes over a buffer the library allocated.
    void adopt(sqc_buf b) noexcept {
        reset();
        lib_ = b;
        data_ = reinterpret_cast<const char*>(b.data);
        size_ = b.len;
    }

private:
    void assign(const void* p, std::size_t n) {
        if (!assign_nothrow(p, n)) throw std::bad_alloc();
    }
    void reset() noexcept {
        if (lib_.data) sqc_buf_free(&lib_);
        lib_ = sqc_buf{};
        own_.reset();
        data_ = nullptr;
        size_ = 0;
    }

    struct Free {
        void operator()(char* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<char, Free> own_;
    sqc_buf lib_{};
    const char* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Hits and misses of a Cache object since it was opened or reset.
struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    friend bool operator==(const Stats&, const Stats&) = default;
};

/// What check() found (and, with fix, repaired).
struct CheckResult {
    bool ok = false;                      ///< nothing wrong (after a fix: fixed)
    std::uint64_t orphaned_files = 0;     ///< value files without a row
    std::uint64_t dangling_rows = 0;      ///< rows whose value file is missing or wrong
    std::uint64_t size_mismatches = 0;    ///< inline rows with a wrong recorded size
    bool counters_consistent = false;     ///< maintained totals matched the rows
    bool sqlite_integrity_ok = false;     ///< SQLite's own check passed
    bool fixed = false;                   ///< repairs were made
};

/// Settings of a store, for the constructors that take them (zero: the default).
struct Options {
    std::uint64_t max_size = 0;        ///< bound on bytes of values, LRU beyond (Cache kinds); 0 unbounded
    std::uint32_t shard_count = 0;     ///< fanouts: 0 = the directory's count, 8 when new
    std::uint64_t file_threshold = 0;  ///< values of at least this size go to files; 0 = 8 KiB
    std::uint64_t max_key_len = 0;     ///< 0 = 4096 bytes
    std::uint64_t max_value_size = 0;  ///< 0 = 4 GiB
    std::optional<std::chrono::microseconds> busy_timeout;          ///< default 10 min
    std::optional<std::chrono::microseconds> maintenance_interval;  ///< default 1 s; 0 disables
    bool sync_files = false;                                        ///< fsync value files

    sqc_options to_c() const noexcept {
        sqc_options o = sqc_options_default();
        o.max_size = max_size;
        o.shard_count = shard_count;
        o.file_threshold = file_threshold;
        o.max_key_len = max_key_len;
        o.max_value_size = max_value_size;
        if (busy_timeout) o.busy_timeout_us = detail::to_micros(*busy_timeout);
        if (maintenance_interval) o.maintenance_interval_us = detail::to_micros(*maintenance_interval);
        o.sync_files = sync_files;
        return o;
    }
};

/// An open transaction (RAII): rolled back when destroyed without commit(). Must end on
/// the thread that began it.
class [[nodiscard]] Transaction {
public:
    Transaction() noexcept = default;
    explicit Transaction(sqc_tx h) noexcept : h_(h) {}
    Transaction(Transaction&& o) noexcept : h_(std::exchange(o.h_, sqc_tx{})) {}
    Transaction& operator=(Transaction&& o) noexcept {
        if (this != &o) {
            end_quietly();
            h_ = std::exchange(o.h_, sqc_tx{});
        }
        return *this;
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() { end_quietly(); }

    /// Commits (the handle ends whatever the outcome; on failure nothing was written).
    void commit() { detail::check(sqc_tx_commit(std::exchange(h_, sqc_tx{}))); }
    /// Rolls back everything done in it.
    void rollback() { detail::check(sqc_tx_rollback(std::exchange(h_, sqc_tx{}))); }
    /// Whether it is still open through this object.
    bool active() const noexcept { return h_.id != 0; }
    sqc_tx handle() const noexcept { return h_; }

private:
    void end_quietly() noexcept {
        // From another thread this fails (WRONG_THREAD) and the transaction is rolled
        // back when its own thread exits.
        if (h_.id) (void)sqc_tx_rollback(std::exchange(h_, sqc_tx{}));
    }
    sqc_tx h_{};
};

/// A held cross-process lock (RAII): released when destroyed or by release().
class [[nodiscard]] Lock {
public:
    Lock() noexcept = default;
    explicit Lock(sqc_lock h) noexcept : h_(h) {}
    Lock(Lock&& o) noexcept : h_(std::exchange(o.h_, sqc_lock{})) {}
    Lock& operator=(Lock&& o) noexcept {
        if (this != &o) {
            if (h_.id) (void)sqc_lock_release(h_);
            h_ = std::exchange(o.h_, sqc_lock{});
        }
        return *this;
    }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    ~Lock() {
        if (h_.id) (void)sqc_lock_release(h_);  // on failure it expires on its own
    }

    /// Releases now, reporting errors.
    void release() { detail::check(sqc_lock_release(std::exchange(h_, sqc_lock{}))); }
    bool held() const noexcept { return h_.id != 0; }
    sqc_lock handle() const noexcept { return h_; }

private:
    sqc_lock h_{};
};

/// Live keys in byte order, fetched a page at a time: `for (const std::string& k :
/// cache.keys("prefix/"))`. An input range: iterate once.
class KeyCursor {
public:
    explicit KeyCursor(sqc_cursor h) noexcept : h_(h) {}
    KeyCursor(KeyCursor&& o) noexcept : h_(std::exchange(o.h_, sqc_cursor{})), buf_(std::move(o.buf_)) {}
    KeyCursor& operator=(KeyCursor&& o) noexcept {
        if (this != &o) {
            close();
            h_ = std::exchange(o.h_, sqc_cursor{});
            buf_ = std::move(o.buf_);
        }
        return *this;
    }
    KeyCursor(const KeyCursor&) = delete;
    KeyCursor& operator=(const KeyCursor&) = delete;
    ~KeyCursor() { close(); }

    /// The next key, or nullopt at the end.
    std::optional<std::string> next() {
        if (buf_.size() < 256) buf_.resize(256);
        for (;;) {
            std::size_t len = 0;
            bool has = false;
            sqc_status s = sqc_cursor_next(h_, reinterpret_cast<std::uint8_t*>(buf_.data()), buf_.size(), &len, &has);
            if (s == SQC_STATUS_BUFFER_TOO_SMALL) {
                buf_.resize(len);
                continue;
            }
            detail::check(s);
            if (!has) return std::nullopt;
            return std::string(buf_.data(), len);
        }
    }

    class iterator {
    public:
        using value_type = std::string;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(KeyCursor* c) : c_(c) { ++*this; }
        const std::string& operator*() const noexcept { return cur_; }
        const std::string* operator->() const noexcept { return &cur_; }
        iterator& operator++() {
            if (auto k = c_->next()) cur_ = std::move(*k);
            else c_ = nullptr;
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.c_ == nullptr; }

    private:
        KeyCursor* c_ = nullptr;
        std::string cur_;
    };

    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() const noexcept { return {}; }

private:
    void close() noexcept {
        if (h_.id) (void)sqc_cursor_close(std::exchange(h_, sqc_cursor{}));
    }
    sqc_cursor h_{};
    std::string buf_;
};

/// The kinds of store, as template argument of BasicStore.
enum class Kind { cache = SQC_KIND_CACHE, index = SQC_KIND_INDEX, fanout_cache = SQC_KIND_FANOUT_CACHE, fanout_index = SQC_KIND_FANOUT_INDEX };

/// The operations common to the four store types (Cache, Index, FanoutCache,
/// FanoutIndex); those of Cache kinds and of fanouts are constrained to them.
template <Kind K>
class BasicStore {
public:
    static constexpr bool is_cache = K == Kind::cache || K == Kind::fanout_cache;
    static constexpr bool is_fanout = K == Kind::fanout_cache || K == Kind::fanout_index;

    BasicStore(BasicStore&& o) noexcept : h_(std::exchange(o.h_, sqc_store{})) {}
    BasicStore& operator=(BasicStore&& o) noexcept {
        if (this != &o) {
            close_quietly();
            h_ = std::exchange(o.h_, sqc_store{});
        }
        return *this;
    }
    BasicStore(const BasicStore&) = delete;
    BasicStore& operator=(const BasicStore&) = delete;
    ~BasicStore() { close_quietly(); }

    /// Closes now (calls running in other threads finish first); later calls throw.
    void close() { detail::check(sqc_close(std::exchange(h_, sqc_store{}))); }
    /// The C handle, to mix with the C API (owned by this object).
    sqc_store handle() const noexcept { return h_; }

    // ---- reads ------------------------------------------------------------------

    /// The value of key, or nullopt when absent or expired.
    std::optional<Buffer> get(std::string_view key) const {
        // The value is copied once, from the database's buffer into the Buffer made in
        // place in the returned optional (no intermediate copy, no move).
        std::optional<Buffer> out;
        bool found = false;
        detail::check(sqc_get_with(
            h_, key.data(), key.size(),
            [](void* o, const std::uint8_t* data, std::size_t len) noexcept {
                auto& out = *static_cast<std::optional<Buffer>*>(o);
                out.emplace();
                if (!out->assign_nothrow(data, len)) out.reset();  // out of memory
            },
            &out, &found));
        if (found && !out) throw std::bad_alloc();
        return out;
    }

    /// Reads the value of key into out (no allocation); returns its length, nullopt
    /// when absent. Throws Error(SQC_STATUS_BUFFER_TOO_SMALL) when it does not fit
    /// (the message gives the size).
    template <class T>
        requires(sizeof(T) == 1 && std::is_trivially_copyable_v<T> && !std::is_const_v<T>)
    std::optional<std::size_t> get_into(std::string_view key, std::span<T> out) const {
        std::size_t len = 0;
        bool found = false;
        detail::check(sqc_get(h_, key.data(), key.size(), reinterpret_cast<std::uint8_t*>(out.data()), out.size(), &len, &found));
        if (!found) return std::nullopt;
        return len;
    }

    /// Whether key holds a live entry.
    bool exists(std::string_view key) const {
        bool out = false;
        detail::check(sqc_contains(h_, key.data(), key.size(), &out));
        return out;
    }

    /// Live entries (exact).
    std::uint64_t count() const { return u64(&sqc_len); }
    /// Bytes of stored values.
    std::uint64_t size() const { return u64(&sqc_size); }
    /// Bytes on disk (database, WAL and value files).
    std::uint64_t volume() const { return u64(&sqc_volume); }

    /// Live keys starting with prefix, in byte order.
    KeyCursor keys(std::string_view prefix = {}) const {
        sqc_cursor c{};
        detail::check(sqc_cursor_open(h_, prefix.data(), prefix.size(), &c));
        return KeyCursor(c);
    }

    // ---- writes -----------------------------------------------------------------

    /// Stores value under key (replacing any value, expiry and tag).
    template <Value V>
    void set(std::string_view key, const V& value) const {
        auto b = detail::value_bytes(value);
        detail::check(sqc_set(h_, key.data(), key.size(), b.data(), b.size(), nullptr));
    }

    /// Stores value under key, expiring after expire.
    template <Value V, class Rep, class Period>
        requires is_cache
    void set(std::string_view key, const V& value, std::chrono::duration<Rep, Period> expire) const {
        set_opts(key, value, detail::to_micros(expire), {}, false);
    }

    /// Stores value under key with a tag (for evict_tag).
    template <Value V>
        requires is_cache
    void set(std::string_view key, const V& value, std::string_view tag) const {
        set_opts(key, value, SQC_NO_EXPIRY, tag, true);
    }

    /// Stores value under key, expiring after expire, with a tag.
    template <Value V, class Rep, class Period>
        requires is_cache
    void set(std::string_view key, const V& value, std::chrono::duration<Rep, Period> expire, std::string_view tag) const {
        set_opts(key, value, detail::to_micros(expire), tag, true);
    }

    /// Stores value only if key is absent (or expired); returns whether it stored.
    template <Value V>
    bool add(std::string_view key, const V& value) const {
        return add_opts(key, value, SQC_NO_EXPIRY, {}, false);
    }

    /// add() with an expiry.
    template <Value V, class Rep, class Period>
        requires is_cache
    bool add(std::string_view key, const V& value, std::chrono::duration<Rep, Period> expire) const {
        return add_opts(key, value, detail::to_micros(expire), {}, false);
    }

    /// add() with a tag.
    template <Value V>
        requires is_cache
    bool add(std::string_view key, const V& value, std::string_view tag) const {
        return add_opts(key, value, SQC_NO_EXPIRY, tag, true);
    }

    /// add() with an expiry and a tag.
    template <Value V, class Rep, class Period>
        requires is_cache
    bool add(std::string_view key, const V& value, std::chrono::duration<Rep, Period> expire, std::string_view tag) const {
        return add_opts(key, value, detail::to_micros(expire), tag, true);
    }

    /// Removes key; returns whether a live entry was removed.
    bool del(std::string_view key) const {
        bool removed = false;
        detail::check(sqc_delete(h_, key.data(), key.size(), &removed));
        return removed;
    }

    /// Removes key and returns its value (nullopt when absent), atomically.
    std::optional<Buffer> pop(std::string_view key) const {
        sqc_buf b{};
        bool found = false;
        detail::check(sqc_pop(h_, key.data(), key.size(), &b, &found));
        if (!found) return std::nullopt;
        std::optional<Buffer> out(std::in_place);
        out->adopt(b);
        return out;
    }

    /// Removes every entry; returns how many.
    std::uint64_t clear() const { return u64(&sqc_clear); }

    // ---- counters (ASCII decimal int64, readable with get) ---------------------

    /// Adds delta to the counter at key (created as default_value + delta when absent);
    /// returns the new value. Atomic across threads and processes.
    std::int64_t incr(std::string_view key, std::int64_t delta = 1, std::int64_t default_value = 0) const {
        std::int64_t out = 0;
        detail::check(sqc_incr(h_, key.data(), key.size(), delta, default_value, &out));
        return out;
    }

    /// Subtracts delta from the counter at key; see incr().
    std::int64_t decr(std::string_view key, std::int64_t delta = 1, std::int64_t default_value = 0) const {
        std::int64_t out = 0;
        detail::check(sqc_decr(h_, key.data(), key.size(), delta, default_value, &out));
        return out;
    }

    /// The counter at key, nullopt when absent; throws when the value is not a counter.
    std::optional<std::int64_t> get_counter(std::string_view key) const {
        std::int64_t out = 0;
        bool found = false;
        detail::check(sqc_get_counter(h_, key.data(), key.size(), &out, &found));
        return found ? std::optional<std::int64_t>(out) : std::nullopt;
    }

    // ---- Cache kinds: expiry, tags, eviction, statistics ------------------------

    /// Gives a live entry a new expiry; returns whether the key was live.
    template <class Rep, class Period>
        requires is_cache
    bool touch(std::string_view key, std::chrono::duration<Rep, Period> expire) const {
        return touch_us(key, detail::to_micros(expire));
    }

    /// Makes a live entry never expire; returns whether the key was live.
    bool touch(std::string_view key) const
        requires is_cache
    {
        return touch_us(key, SQC_NO_EXPIRY);
    }

    /// Removes every entry tagged tag; returns how many.
    std::uint64_t evict_tag(std::string_view tag) const
        requires is_cache
    {
        std::uint64_t n = 0;
        detail::check(sqc_evict_tag(h_, tag.data(), tag.size(), &n));
        return n;
    }

    /// Removes every expired entry now; returns how many.
    std::uint64_t expire() const
        requires is_cache
    {
        return u64(&sqc_expire);
    }

    /// Evicts least-recently-used entries now if over max_size; returns how many.
    std::uint64_t evict() const
        requires is_cache
    {
        return u64(&sqc_evict);
    }

    /// The bound on bytes of values (0: unbounded).
    std::uint64_t max_size() const
        requires is_cache
    {
        return u64(&sqc_max_size);
    }

    /// Changes the bound (0: unbounded) for this object from now on.
    void set_max_size(std::uint64_t bytes) const
        requires is_cache
    {
        detail::check(sqc_set_max_size(h_, bytes));
    }

    /// Hits and misses of reads through this object.
    Stats stats() const
        requires is_cache
    {
        sqc_hit_stats s{};
        detail::check(sqc_stats(h_, &s));
        return {s.hits, s.misses};
    }

    /// Resets hits and misses to zero.
    void reset_stats() const
        requires is_cache
    {
        detail::check(sqc_reset_stats(h_));
    }

    // ---- integrity --------------------------------------------------------------

    /// Verifies the store's structure; with fix, repairs what it found.
    CheckResult check(bool fix = false) const {
        sqc_check_report r{};
        detail::check(sqc_check(h_, fix, &r));
        return {r.ok, r.orphaned_files, r.dangling_rows, r.size_mismatches, r.counters_consistent, r.sqlite_integrity_ok, r.fixed};
    }

    // ---- transactions and locks -------------------------------------------------

    /// Begins a transaction on this store (RAII, see Transaction).
    Transaction transaction() const
        requires(!is_fanout)
    {
        return begin_tx(nullptr, 0);
    }

    /// Begins a transaction on the shard of key. It covers the keys of that shard only:
    /// writing a key of another shard meanwhile throws (`WRONG_SHARD`); reading one is
    /// fine (use keys that share the transaction's key, e.g. one key per transaction).
    Transaction transaction(std::string_view key) const
        requires is_fanout
    {
        return begin_tx(key.data(), key.size());
    }

    /// Runs f() in a transaction: committed when f returns, rolled back when it throws.
    template <class F>
        requires(!is_fanout) && std::invocable<F&>
    decltype(auto) transact(F&& f) const {
        return run_in(transaction(), f);
    }

    /// Runs f() in a transaction on the shard of key.
    template <class F>
        requires is_fanout && std::invocable<F&>
    decltype(auto) transact(std::string_view key, F&& f) const {
        return run_in(transaction(key), f);
    }

    /// Takes the cross-process lock name, waiting as long as it takes; it expires after
    /// expire even if the holder dies.
    template <class Rep, class Period>
    Lock lock(std::string_view name, std::chrono::duration<Rep, Period> expire) const {
        sqc_lock l{};
        detail::check(sqc_lock_acquire(h_, name.data(), name.size(), detail::to_micros(expire), SQC_WAIT_FOREVER, &l));
        return Lock(l);
    }

    /// Takes the lock name, waiting at most timeout (Error(SQC_STATUS_LOCK_TIMEOUT)).
    template <class Rep, class Period, class Rep2, class Period2>
    Lock lock(std::string_view name, std::chrono::duration<Rep, Period> expire, std::chrono::duration<Rep2, Period2> timeout) const {
        sqc_lock l{};
        detail::check(sqc_lock_acquire(h_, name.data(), name.size(), detail::to_micros(expire), detail::to_micros(timeout), &l));
        return Lock(l);
    }

    /// Takes the lock name if it is free.
    template <class Rep, class Period>
    std::optional<Lock> try_lock(std::string_view name, std::chrono::duration<Rep, Period> expire) const {
        sqc_lock l{};
        bool acquired = false;
        detail::check(sqc_lock_try(h_, name.data(), name.size(), detail::to_micros(expire), &l, &acquired));
        if (!acquired) return std::nullopt;
        return std::optional<Lock>(std::in_place, l);
    }

    // ---- metadata and shards ------------------------------------------------------

    /// The store's metadata value name (not an entry), nullopt when unset.
    std::optional<std::string> metadata(std::string_view name) const {
        sqc_buf b{};
        bool found = false;
        detail::check(sqc_metadata(h_, name.data(), name.size(), &b, &found));
        Buffer owner;
        owner.adopt(b);
        if (!found) return std::nullopt;
        return owner.to_string();
    }

    /// Sets the metadata value name.
    void set_metadata(std::string_view name, std::string_view value) const {
        // A non-null pointer: an empty value is set, not removed.
        detail::check(sqc_set_metadata(h_, name.data(), name.size(), value.data() ? value.data() : "", value.size()));
    }

    /// Removes the metadata value name.
    void remove_metadata(std::string_view name) const {
        detail::check(sqc_set_metadata(h_, name.data(), name.size(), nullptr, 0));
    }

    /// Number of shards.
    std::uint32_t shard_count() const
        requires is_fanout
    {
        std::uint32_t n = 0;
        detail::check(sqc_shard_count(h_, &n));
        return n;
    }

protected:
    sqc_store namespace_handle(std::string_view name) const {
        sqc_store out{};
        detail::check(sqc_namespace(h_, name.data() ? name.data() : "", name.size(), &out));
        return out;
    }

    BasicStore(std::string_view path, const sqc_options& opts) {
        detail::check(sqc_open(static_cast<std::int32_t>(K), path.data(), path.size(), &opts, &h_));
    }
    explicit BasicStore(sqc_store h) noexcept : h_(h) {}

    sqc_store reopen_handle() const {
        sqc_store out{};
        detail::check(sqc_reopen(h_, &out));
        return out;
    }

private:
    std::uint64_t u64(sqc_status (*f)(sqc_store, std::uint64_t*)) const {
        std::uint64_t n = 0;
        detail::check(f(h_, &n));
        return n;
    }

    template <Value V>
    void set_opts(std::string_view key, const V& value, std::int64_t expire_us, std::string_view tag, bool has_tag) const {
        auto b = detail::value_bytes(value);
        sqc_set_options o{expire_us, has_tag ? (tag.data() ? tag.data() : "") : nullptr, tag.size()};
        detail::check(sqc_set(h_, key.data(), key.size(), b.data(), b.size(), &o));
    }

    template <Value V>
    bool add_opts(std::string_view key, const V& value, std::int64_t expire_us, std::string_view tag, bool has_tag) const {
        auto b = detail::value_bytes(value);
        sqc_set_options o{expire_us, has_tag ? (tag.data() ? tag.data() : "") : nullptr, tag.size()};
        bool stored = false;
        detail::check(sqc_add(h_, key.data(), key.size(), b.data(), b.size(), &o, &stored));
        return stored;
    }

    bool touch_us(std::string_view key, std::int64_t us) const {
        bool touched = false;
        detail::check(sqc_touch(h_, key.data(), key.size(), us, &touched));
        return touched;
    }

    Transaction begin_tx(const char* key, std::size_t len) const {
        sqc_tx t{};
        detail::check(sqc_tx_begin(h_, key, len, &t));
        return Transaction(t);
    }

    template <class F>
    static decltype(auto) run_in(Transaction tx, F& f) {
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
            std::invoke(f);
            tx.commit();
        } else {
            decltype(auto) r = std::invoke(f);
            tx.commit();
            return r;
        }
    }

    void close_quietly() noexcept {
        if (h_.id) (void)sqc_close(std::exchange(h_, sqc_store{}));
    }

    sqc_store h_{};
};

/// Full-featured cache: expiry, tags, LRU eviction by size, hit/miss statistics.
class Cache : public BasicStore<Kind::cache> {
public:
    /// Opens (creating) the cache in directory path; max_size bounds the bytes of
    /// values (0: unbounded), LRU-evicted in the background beyond.
    explicit Cache(std::string_view path, std::uint64_t max_size = 0) : BasicStore(path, opts(max_size)) {}
    Cache(std::string_view path, const Options& options) : BasicStore(path, options.to_c()) {}
    /// A new, independent handle on the same directory and settings (e.g. after fork).
    Cache reopen() const { return Cache(reopen_handle()); }
    /// The namespace name of the same store (created if needed): its own keys, count,
    /// size and clear, sharing the store's connections and size bound ("" is the
    /// default one). A plugin's store s (sciqlop-cache-host) is the namespace s.
    Cache ns(std::string_view name) const { return Cache(namespace_handle(name)); }

private:
    explicit Cache(sqc_store h) noexcept : BasicStore(h) {}
    static sqc_options opts(std::uint64_t max_size) noexcept {
        sqc_options o = sqc_options_default();
        o.max_size = max_size;
        return o;
    }
};

/// Bare persistent key-value store: no expiry, eviction, tags or statistics.
class Index : public BasicStore<Kind::index> {
public:
    explicit Index(std::string_view path) : BasicStore(path, sqc_options_default()) {}
    Index(std::string_view path, const Options& options) : BasicStore(path, options.to_c()) {}
    Index reopen() const { return Index(reopen_handle()); }
    /// The namespace name of the same store (created if needed): its own keys, count,
    /// size and clear, sharing the store's connections and size bound ("" is the
    /// default one). A plugin's store s (sciqlop-cache-host) is the namespace s.
    Index ns(std::string_view name) const { return Index(namespace_handle(name)); }

private:
    explicit Index(sqc_store h) noexcept : BasicStore(h) {}
};

/// A Cache sharded over shard_count stores (parallel writers; transactions per key).
class FanoutCache : public BasicStore<Kind::fanout_cache> {
public:
    /// shard_count 0: the directory's count, 8 for a new one (another count than the
    /// directory's throws SQC_STATUS_SHARD_COUNT_MISMATCH); max_size bounds the whole.
    explicit FanoutCache(std::string_view path, std::uint32_t shard_count = 0, std::uint64_t max_size = 0)
        : BasicStore(path, opts(shard_count, max_size)) {}
    FanoutCache(std::string_view path, const Options& options) : BasicStore(path, options.to_c()) {}
    FanoutCache reopen() const { return FanoutCache(reopen_handle()); }
    /// The namespace name of the same store (created if needed): its own keys, count,
    /// size and clear, sharing the store's connections and size bound ("" is the
    /// default one). A plugin's store s (sciqlop-cache-host) is the namespace s.
    FanoutCache ns(std::string_view name) const { return FanoutCache(namespace_handle(name)); }

private:
    explicit FanoutCache(sqc_store h) noexcept : BasicStore(h) {}
    static sqc_options opts(std::uint32_t shards, std::uint64_t max_size) noexcept {
        sqc_options o = sqc_options_default();
        o.shard_count = shards;
        o.max_size = max_size;
        return o;
    }
};

/// An Index sharded over shard_count stores.
class FanoutIndex : public BasicStore<Kind::fanout_index> {
public:
    explicit FanoutIndex(std::string_view path, std::uint32_t shard_count = 0) : BasicStore(path, opts(shard_count)) {}
    FanoutIndex(std::string_view path, const Options& options) : BasicStore(path, options.to_c()) {}
    FanoutIndex reopen() const { return FanoutIndex(reopen_handle()); }
    /// The namespace name of the same store (created if needed): its own keys, count,
    /// size and clear, sharing the store's connections and size bound ("" is the
    /// default one). A plugin's store s (sciqlop-cache-host) is the namespace s.
    FanoutIndex ns(std::string_view name) const { return FanoutIndex(namespace_handle(name)); }

private:
    explicit FanoutIndex(sqc_store h) noexcept : BasicStore(h) {}
    static sqc_options opts(std::uint32_t shards) noexcept {
        sqc_options o = sqc_options_default();
        o.shard_count = shards;
        return o;
    }
};

}  // namespace sciqlop_cache

#ifndef SCIQLOP_CACHE_NO_GLOBAL_NAMES
// The original sciqlop-cache's names are global.
using sciqlop_cache::Buffer;
using sciqlop_cache::Cache;
using sciqlop_cache::FanoutCache;
using sciqlop_cache::FanoutIndex;
using sciqlop_cache::Index;
#endif
