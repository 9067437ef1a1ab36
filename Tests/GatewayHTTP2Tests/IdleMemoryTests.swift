// An idle session gives back the memory that holds nothing (HTTP2Session.releaseIdleMemory, the
// page arena of page_memory.c), only after a whole sweep of idleness, never with a stream open,
// and goes on working afterwards.
import CGatewayShims
import Glibc
import Testing
@testable import GatewayHTTP2

@Suite struct IdleMemory {
    /// One GET answered with a body, pumped to the end.
    func exchange(_ p: ClientPair, _ path: String) throws {
        let id = try p.client.request(method: "GET", authority: "a", path: path, endStream: true)
        p.pump()
        try p.server.respond(id, status: 200, headers: fields([("content-type", "text/plain")]), endStream: false)
        try sendData(p.server, id, Array("hello".utf8), endStream: true)
        p.pump()
        #expect(text(p.client.receivedBody(id)) == "hello")
        p.client.consume(id, 5)
        #expect(p.server.openStreams == 0 && p.client.openStreams == 0)
    }

    @Test func anIdleSessionGivesBackItsPagesOnTheSecondSweepAndStillWorks() throws {
        let p = try ClientPair()
        try exchange(p, "/one")
        #expect(p.server.releaseIdleMemory() == nil, "the first sweep only notes the quiet")
        let given = try #require(p.server.releaseIdleMemory())
        #expect(given >= 4096, "at least the frame buffer's written page: \(given)")
        #expect(p.server.releaseIdleMemory() == nil, "given back once per quiet spell")
        // The zeroed frame buffer and stream table serve the next requests.
        try exchange(p, "/two")
        try exchange(p, "/three")
        #expect(p.server.releaseIdleMemory() == nil && p.server.releaseIdleMemory() != nil)
    }

    @Test func aSessionWithAnOpenStreamOrTrafficKeepsItsMemory() throws {
        let p = try ClientPair()
        let id = try p.client.request(method: "GET", authority: "a", path: "/slow", endStream: true)
        p.pump()
        #expect(p.server.openStreams == 1)
        #expect(p.server.releaseIdleMemory() == nil && p.server.releaseIdleMemory() == nil, "a stream is open")
        try p.server.respond(id, status: 204, endStream: true)
        p.pump()
        #expect(p.server.releaseIdleMemory() == nil, "bytes moved since the last sweep")
        #expect(p.server.releaseIdleMemory() != nil)
    }

    @Test func theArenaKeepsWrittenPagesThatAreNotZeroAndFreesEveryKind() throws {
        let arena = try #require(gw_page_arena_new())
        defer { gw_page_arena_free(arena) }
        let user = UnsafeMutableRawPointer(arena)
        let small = try #require(gw_page_malloc(100, user))
        let table = try #require(gw_page_calloc(256, 16, user))
        #expect(Int(bitPattern: table) & 4095 == 0, "a page block is page aligned, with no header")
        table.storeBytes(of: 7, toByteOffset: 96, as: UInt64.self)
        #expect(gw_page_arena_trim(arena) == 0, "a written page that is not zero stays")
        #expect(table.load(fromByteOffset: 96, as: UInt64.self) == 7)
        table.storeBytes(of: 0, toByteOffset: 96, as: UInt64.self)
        #expect(gw_page_arena_trim(arena) == 4096, "a page of zeros goes back")
        // Growing a small block into a page block, and back down, keeps the bytes.
        small.storeBytes(of: 0x1234, as: UInt32.self)
        let grown = try #require(gw_page_realloc(small, 10_000, user))
        #expect(grown.load(as: UInt32.self) == 0x1234 && Int(bitPattern: grown) & 4095 == 0)
        let shrunk = try #require(gw_page_realloc(grown, 64, user))
        #expect(shrunk.load(as: UInt32.self) == 0x1234)
        gw_page_free(shrunk, user)
        gw_page_free(table, user)
        gw_page_free(nil, user)
    }

    /// A block announced as unwritten comes from a page of its own (once: the next of that
    /// size is a malloc block again), and frees like the others.
    @Test func theBlockAnnouncedUnwrittenGetsAPageOnce() throws {
        let arena = try #require(gw_page_arena_new())
        defer { gw_page_arena_free(arena) }
        let user = UnsafeMutableRawPointer(arena)
        let empty = try #require(gw_page_malloc(0, user), "nothing announced: a 0-byte block is malloc's, not a page")
        gw_page_arena_expect_unwritten(arena, 1024)
        let other = try #require(gw_page_malloc(1000, user))
        let page = try #require(gw_page_malloc(1024, user))
        let next = try #require(gw_page_malloc(1024, user))
        #expect(Int(bitPattern: page) & 4095 == 0 && gw_page_arena_unwritten_block(arena) == page)
        #expect(!resident(page), "allocated, not written: no memory behind it yet")
        #expect(Int(bitPattern: next) & 4095 != 0, "only the first block of that size")
        for b in [empty, other, page, next] { gw_page_free(b, user) }
        #expect(gw_page_arena_unwritten_block(arena) == nil)
    }

    /// The server session's HPACK encoder (table size 0) never writes its ring buffer: the
    /// block announced for it is still not resident after requests and responses with fields,
    /// so it is the encoder's (the decoder's ring, allocated next, is written by the first
    /// request's indexed fields). Fails if nghttp2 ever allocates them in the other order.
    @Test func theServersEncoderRingStaysUnwritten() throws {
        let p = try ClientPair()
        let ring = try #require(gw_page_arena_unwritten_block(p.server.arena))
        try exchange(p, "/one")
        try exchange(p, "/two")
        #expect(!resident(ring))
    }

    func resident(_ page: UnsafeMutableRawPointer) -> Bool {
        var vec: UInt8 = 0
        return mincore(page, 4096, &vec) == 0 && vec & 1 == 1
    }

    /// nghttp2's freed small blocks wait in the thread's cache, by glibc's chunk size, for the
    /// next of that size, up to 512 KiB, come back zeroed from calloc, and go back to malloc on
    /// release. A synchronous test stays on one thread, whose cache it empties first. (glibc
    /// sometimes hands out a block a chunk larger than asked; the cache keys it by what it is.)
    @Test func smallBlocksComeBackFromTheThreadsCacheUpToItsBound() throws {
        _ = gw_block_cache_release()
        let arena = try #require(gw_page_arena_new())
        defer { gw_page_arena_free(arena) }
        let user = UnsafeMutableRawPointer(arena)
        let first = try (0..<20).map { _ in try #require(gw_page_malloc(600, user)) }
        first.forEach { gw_page_free($0, user) }
        let again = try (0..<20).map { _ in try #require(gw_page_malloc(600, user)) }
        #expect(Set(again).intersection(first).count >= 10, "the freed blocks handed out again")
        again.forEach { gw_page_free($0, user) }
        let held = gw_block_cache_release()
        // Twenty at least; up to forty when some of the first were a chunk larger (kept, not asked for again).
        #expect(held >= 20 * 600 && held <= 40 * 616, "what the cache held, given back: \(held)")
        #expect(gw_block_cache_release() == 0)

        let dirty = try #require(gw_page_malloc(100, user))
        dirty.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 100)
        gw_page_free(dirty, user)
        let zeroed = try #require(gw_page_calloc(1, 100, user))
        #expect(UnsafeRawBufferPointer(start: zeroed, count: 100).allSatisfy { $0 == 0 })
        gw_page_free(zeroed, user)
        _ = gw_block_cache_release()

        let many = try (0..<1000).map { _ in try #require(gw_page_malloc(1000, user)) }
        many.forEach { gw_page_free($0, user) }
        let bounded = gw_block_cache_release()
        #expect(bounded <= 512 * 1024 && bounded > 500 * 1024, "bounded at 512 KiB, the rest freed at once: \(bounded)")
    }

    /// Large blocks (OpenSSL's record buffers): a freed one is handed out again for a request it
    /// does not exceed by more than a quarter, never for a much smaller one; at most eight wait,
    /// the oldest making room for a newer one; release gives them all back.
    @Test func largeBlocksComeBackForRequestsOfTheirSize() throws {
        _ = gw_block_cache_release()
        let buffer = try #require(gw_block_malloc(65_536 + 21))
        gw_block_free(buffer)
        let small = gw_block_malloc(2_000)
        #expect(small != buffer, "a 64 KiB block is not spent on 2 KB")
        free(small)
        let again = try #require(gw_block_malloc(65_536 + 21))
        #expect(again == buffer, "the freed buffer comes back for the next of its size")
        gw_block_free(again)
        _ = gw_block_cache_release()

        let blocks = try (0..<9).map { k in try #require(gw_block_malloc(20_000 + 4_096 * k)) }
        blocks.forEach { gw_block_free($0) }
        // Eight wait: the first (the oldest) was freed to make room for the ninth.
        let fit = gw_block_malloc(20_000)
        #expect(fit != blocks[0] && fit == blocks[1], "the oldest left, the next one in size fits")
        free(fit)
        let newest = try #require(gw_block_malloc(20_000 + 4_096 * 8))
        #expect(newest == blocks[8])
        gw_block_free(newest)
        let held = gw_block_cache_release()
        #expect(held >= 7 * 20_000 && held <= 1024 * 1024, "what the cache held: \(held)")
        #expect(gw_block_cache_release() == 0)
    }
}
