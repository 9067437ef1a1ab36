import CGatewayShims

/// glibc malloc settings for a long-running server with per-connection churn.
public enum Allocator {
    /// Each worker thread gets its own malloc arena; by default glibc hands memory freed at
    /// the top of an arena back to the kernel at once and faults it in again for the next
    /// connection (page zeroing showed as 7 % of the CPU of a full handshake). Keep freed
    /// memory (up to 256 MiB) and grow in 64 MiB steps of address space (not of RSS).
    /// Measured with scripts/bench's hs_full scenario: 981 -> about 800 µs of CPU per connection.
    public static func tuneForServer() {
        gw_malloc_tune(trimThreshold, topPad)
    }

    static let trimThreshold: Int32 = 256 << 20
    static let topPad: Int32 = 64 << 20

    /// What `tuneForServer` keeps, handed back to the kernel once: after a surge of connections
    /// (a flood) has passed, so a sidecar under a memory limit does not stay at its peak. Costs
    /// a few milliseconds (every free chunk is looked at); the settings stay the server's.
    public static func releaseFreeMemory() {
        gw_malloc_release(trimThreshold, topPad)
    }

    /// OpenSSL allocates through the calling thread's block cache (block_cache.c): a request
    /// frees and allocates again the same blocks (four WPACKET states; the record buffers,
    /// released whenever empty), which cost ~3,000 instructions per keep-alive request in
    /// glibc's malloc and free. Before OpenSSL's first allocation; false when too late, under a
    /// sanitizer (whose allocator then sees every block), or with GATEWAY_OPENSSL_BLOCK_CACHE=off.
    @discardableResult
    public static func cacheOpenSSLBlocks() -> Bool { gw_openssl_use_block_cache() == 1 }

    /// The calling thread's cached blocks (nghttp2's and OpenSSL's) go back to malloc: its
    /// connections are idle, or a surge has passed. The bytes they held.
    @discardableResult
    public static func releaseBlockCache() -> Int { gw_block_cache_release() }
}
