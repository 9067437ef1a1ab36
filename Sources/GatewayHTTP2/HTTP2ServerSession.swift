// The server side of one HTTP/2 connection on libnghttp2, with no I/O inside: the client's
// bytes go in through `receive`, everything nghttp2 wants to send comes out through `write`,
// and what happened comes out as events the caller drains with `nextEvent`. nghttp2 does the
// framing, HPACK, stream states, flow-control accounting and RFC 9113 §8 message checks; the
// Swift side keeps the per-stream buffers (HTTP2Session, shared with the client side),
// enforces the header-list limits nghttp2 1.52 only announces, and names every connection
// failure with a short stable reason.
import CGatewayShims
import CNGHTTP2
import GatewaySystem

public final class HTTP2ServerSession: HTTP2Session {
    public let config: HTTP2Config

    private var events = EventQueue<HTTP2Event>()

    /// The highest client stream id a HEADERS frame named, and the ids it skipped (the last 16
    /// gaps): an id in a gap was never opened (a HEADERS there is a stream id going backwards);
    /// one that was (trailers after we closed it) is left to nghttp2.
    var highestStream: Int32 = 0
    var skippedStreams: [ClosedRange<Int32>] = []
    /// Compressed size of the header block being received (HEADERS + CONTINUATION payloads),
    /// and its CONTINUATION frames so far.
    var headerBlockSize = 0
    var continuations = 0
    /// Streams nghttp2 refused (RST_STREAM REFUSED_STREAM over max concurrent streams).
    public internal(set) var refusedStreams = 0
    /// Rapid reset (CVE-2023-44487): the client's RST_STREAM frames drain this token bucket
    /// (`resetBurst` tokens, `resetRate` more a second, the shape of nghttp2's own limit). Ours
    /// is checked first (nghttp2 calls on_frame_recv before it counts), so the connection ends
    /// with ENHANCE_YOUR_CALM as SPEC §12 says; nghttp2 1.52's own limit would send INTERNAL_ERROR.
    var resetTokens: UInt64
    var resetStamp: UInt64

    /// Creates the session and queues our SETTINGS (write it out with `write(into:)`).
    /// `pool`: the loop thread's buffer pool for the per-stream buffers.
    /// `origins`: an ORIGIN frame (RFC 8336) to send right after our SETTINGS, before anything else.
    public init(config: HTTP2Config = HTTP2Config(), pool: BufferPool? = nil, origins: [String] = []) throws(HTTP2Error) {
        self.config = config
        resetTokens = config.resetBurst
        resetStamp = monotonicMilliseconds() / 1000
        super.init(pool: pool)
        // Spares for as many streams as a client may have open: h2load -m128 closes and opens
        // them in runs of dozens, and with 32 kept most new streams allocated their object and
        // grew their head storage again. Never more than the connection held open at once, and
        // dropped with the rest of its memory when it goes idle.
        keptStreams = Int(config.maxConcurrentStreams)
        // Likewise the stream table: emptied after each run it was dropped and regrown in five
        // doublings, rehashing every stream (a retain and release each). Kept until the
        // connection goes idle (releaseIdleMemory).
        streams = StreamMap(keepingRoomFor: keptStreams)
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0 else { throw HTTP2Error("nghttp2_session_callbacks_new failed") }
        defer { nghttp2_session_callbacks_del(callbacks) }
        installCallbacks(callbacks)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw HTTP2Error("nghttp2_option_new failed") }
        defer { nghttp2_option_del(option) }
        // Window updates only as the caller consumes (a slow backend cannot make us buffer more).
        nghttp2_option_set_no_auto_window_update(option, 1)
        // A backstop one second's worth behind our own bucket (`takeResetToken`): whatever the
        // clocks' second boundaries, ours fires first.
        nghttp2_option_set_stream_reset_rate_limit(option, config.resetBurst + config.resetRate, config.resetRate)
        // CVE-2024-28182. The deb12u3 backport counts every mem_recv call that ends inside a
        // CONTINUATION frame header, so a frame header split across reads counts up to 9 times
        // (found by the h2frames fuzz target). We count whole frames in on_begin_frame; nghttp2's
        // count stays as a backstop that a split header cannot trip first.
        nghttp2_option_set_max_continuations(option, 9 * config.maxContinuations + 9)
        nghttp2_option_set_max_outbound_ack(option, config.maxOutboundAck)
        nghttp2_option_set_max_settings(option, config.maxSettingsEntries)
        // No RFC 7540 priority tree: closed streams are not kept around for it.
        nghttp2_option_set_no_closed_streams(option, 1)
        // Response heads are encoded without HPACK's dynamic table (literals and static-table
        // names, as nginx sends them): an idle connection keeps no copies of the last response's
        // fields, and no response pays for table inserts and evictions. Requests still use the
        // client's table (4,096 bytes, the default SETTINGS_HEADER_TABLE_SIZE).
        nghttp2_option_set_max_deflate_dynamic_table_size(option, 0)
        // So the encoder's table is never written; but nghttp2 1.52 still allocates its ring
        // buffer for 4,096 bytes (128 entry pointers), the first 1,024-byte block a new session
        // asks for (the decoder's comes next, and is written). From an unwritten page it costs
        // no resident memory: 1 KB less per idle HTTP/2 connection. Were the order to change,
        // the decoder's ring would take the page and cost 3 KB more (mem_idle_h2 would say so).
        gw_page_arena_expect_unwritten(arena, 128 * MemoryLayout<UnsafeRawPointer>.size)

        try createSession(server: true, callbacks: callbacks, option: option)
        try submitSettings([
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: config.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(config.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(config.maxHeaderListSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ], connectionWindow: config.connectionWindowSize) { () throws(HTTP2Error) in
            if !origins.isEmpty { try submitOrigin(origins) }
        }
    }

    override var bodyName: String { "response body" }

    // MARK: events

    /// The next event, in the order things happened; nil when all were drained.
    public func nextEvent() -> HTTP2Event? { events.next() }

    func emit(_ e: consuming HTTP2Event) { events.append(e) }   // moved into the queue, not copied

    override func releaseEventStorage() { events.releaseIfEmpty() }

    override func dataReceived(_ id: Int32, count: Int) { emit(.data(stream: id, count: count)) }
    override func malformed(_ id: Int32, reason: String) { emit(.malformed(stream: id, reason: reason)) }

    override func streamClosed(_ st: HTTP2Stream, code: UInt32) -> Bool {
        if st.delivered { emit(.streamClosed(stream: st.id, code: code)) }
        return false
    }

    /// The length of the stream's `:path` as received, also when its head was too large (0 if
    /// none or the stream is gone).
    public func requestPathLength(_ stream: Int32) -> Int { streams[stream]?.pathLength ?? 0 }

    // MARK: failures

    /// A HEADERS frame on client stream `id`: false when the id goes backwards to one never opened.
    func checkStreamOrder(_ id: Int32) -> Bool {
        guard id > highestStream else { return !skippedStreams.contains { $0.contains(id) } }
        if id > highestStream + 2 {
            if skippedStreams.count == 16 { skippedStreams.removeFirst() }
            skippedStreams.append((highestStream + 1)...(id - 2))
        }
        highestStream = id
        return true
    }

    /// One RST_STREAM from the client: false once the reset budget is spent (whole seconds of
    /// CLOCK_MONOTONIC refill it, as nghttp2_ratelim does).
    func takeResetToken() -> Bool {
        let now = monotonicMilliseconds() / 1000
        if now > resetStamp {
            let gain = (now - resetStamp).multipliedReportingOverflow(by: config.resetRate)
            resetTokens = gain.overflow ? config.resetBurst : min(config.resetBurst, resetTokens &+ gain.partialValue)
            resetStamp = now
        }
        guard resetTokens > 0 else { return false }
        resetTokens -= 1
        return true
    }
}
