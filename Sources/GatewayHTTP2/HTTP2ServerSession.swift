// The server side of one HTTP/2 connection on libnghttp2, with no I/O inside: the client's
// bytes go in through `receive`, everything nghttp2 wants to send comes out through `write`,
// and what happened comes out as events the caller drains with `nextEvent`. nghttp2 does the
// framing, HPACK, stream states, flow-control accounting and RFC 9113 §8 message checks; the
// Swift side keeps the per-stream buffers, enforces the header-list limits nghttp2 1.52 only
// announces, and names every connection failure with a short stable reason.
import CGatewayShims
import CNGHTTP2
import GatewaySystem

public final class HTTP2ServerSession {
    public let config: HTTP2Config
    /// The nghttp2 session; its user_data is `self` unretained. Invariant: the session is
    /// deleted in `deinit`, so no callback can run after `self` is gone.
    var session: OpaquePointer?
    var streams: [Int32: HTTP2Stream] = [:]
    let pool: BufferPool?

    private var events: [HTTP2Event] = []
    private var eventHead = 0

    /// Set once the connection is dead (a fatal receive error or a GOAWAY nghttp2 sent itself).
    public internal(set) var failure: HTTP2Error?
    /// Reason and GOAWAY code one of our callbacks set before failing the session (a limit or
    /// rule we enforce ourselves).
    var callbackFailure: (reason: String, code: UInt32)?
    /// The highest client stream id a HEADERS frame named, and the ids it skipped (the last 16
    /// gaps): an id in a gap was never opened (a HEADERS there is a stream id going backwards);
    /// one that was (trailers after we closed it) is left to nghttp2.
    var highestStream: Int32 = 0
    var skippedStreams: [ClosedRange<Int32>] = []
    /// The caller submitted a GOAWAY: one with an error code is not a library-detected failure.
    var submittedGoaway = false
    /// The type of the frame being read, to name a flood (SETTINGS or PING).
    var lastFrameType: UInt8 = 0
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
    /// Scratch for lower-casing response field names (kept: no allocation per response).
    var nameScratch: [UInt8] = []

    /// Creates the session and queues our SETTINGS (write it out with `write(into:)`).
    /// `pool`: the loop thread's buffer pool for the per-stream buffers.
    /// `origins`: an ORIGIN frame (RFC 8336) to send right after our SETTINGS, before anything else.
    public init(config: HTTP2Config = HTTP2Config(), pool: BufferPool? = nil, origins: [String] = []) throws(HTTP2Error) {
        self.config = config
        self.pool = pool
        resetTokens = config.resetBurst
        resetStamp = monotonicMilliseconds() / 1000
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

        let me = Unmanaged.passUnretained(self).toOpaque()
        var s: OpaquePointer?
        // nghttp2's own blocks from page memory: its 16 KiB frame buffer and 4 KiB tables are
        // mostly unwritten on an idle connection, and unwritten pages cost no RSS (35.3 -> 30.3 KB
        // per idle HTTP/2 connection, 1,000 held after one request each). nghttp2 copies the struct.
        var mem = nghttp2_mem(mem_user_data: nil, malloc: gw_page_malloc, free: gw_page_free,
                              calloc: gw_page_calloc, realloc: gw_page_realloc)
        let rv = nghttp2_session_server_new3(&s, callbacks, me, option, &mem)
        guard rv == 0, let s else { throw HTTP2Error("nghttp2_session_server_new3 failed", libraryCode: rv) }
        session = s

        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: config.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(config.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(config.maxHeaderListSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ]
        let srv = nghttp2_submit_settings(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        guard srv == 0 else { throw HTTP2Error("nghttp2_submit_settings failed", libraryCode: srv) }
        if !origins.isEmpty { try submitOrigin(origins) }
        if config.connectionWindowSize > 65535 {
            let wrv = nghttp2_session_set_local_window_size(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, config.connectionWindowSize)
            guard wrv == 0 else { throw HTTP2Error("nghttp2_session_set_local_window_size failed", libraryCode: wrv) }
        }
    }

    deinit { nghttp2_session_del(session) }

    // MARK: bytes in, bytes out

    /// Feeds the client's bytes (the connection preface first). Returns how many were used
    /// (all of them unless it throws). Throws when the connection cannot go on: a GOAWAY is
    /// queued then, so the caller writes the output out and closes. A failure nghttp2 handles
    /// without failing this call (it queues its own GOAWAY) arrives as `.connectionError`
    /// when `write` emits that GOAWAY. Either way a connection reports one failure.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2Error) -> Int {
        if let failure { throw failure }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        let n = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if n < 0 { throw fail(libraryCode: Int32(n)) }
        return n
    }

    /// Appends what nghttp2 has to send (frames, as many as fit under `limit` bytes in `sink`)
    /// to `sink`. Call after `receive` and after actions; `wantsWrite` says whether more waits.
    public func write(into sink: inout ByteBuffer, limit: Int = .max) throws(HTTP2Error) {
        while sink.readableCount < limit {
            var p: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &p)
            if n < 0 { throw fail(libraryCode: Int32(n)) }
            guard n > 0, let p else { return }
            sink.append(UnsafeRawBufferPointer(start: p, count: n))
        }
    }

    /// Whether nghttp2 still wants the client's bytes; false after a fatal error and once a
    /// GOAWAY went out and no stream is open (then close when `wantsWrite` is false too).
    public var wantsRead: Bool { failure == nil && nghttp2_session_want_read(session) != 0 }
    /// Whether `write` has something to emit (false while every stream with a response body
    /// waits for `sendData`).
    public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    /// Streams the caller knows of (a head was delivered) or whose head is being received.
    public var openStreams: Int { streams.count }

    // MARK: events

    /// The next event, in the order things happened; nil when all were drained.
    public func nextEvent() -> HTTP2Event? {
        guard eventHead < events.count else { return nil }
        let e = events[eventHead]
        eventHead += 1
        if eventHead == events.count { events.removeAll(keepingCapacity: true); eventHead = 0 }
        return e
    }

    func emit(_ e: HTTP2Event) { events.append(e) }

    // MARK: request bodies

    /// The stream's received body bytes the caller has not consumed (valid until the next call
    /// into the session). Empty for an unknown stream.
    public func receivedBody(_ stream: Int32) -> UnsafeRawBufferPointer {
        streams[stream]?.incoming.readable ?? UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// The caller has taken `count` body bytes of the stream (the backend accepted them): they
    /// leave the receive buffer and count toward the stream's and the connection's WINDOW_UPDATE.
    public func consume(_ stream: Int32, _ count: Int) {
        guard let s = streams[stream], count > 0 else { return }
        let n = min(count, s.incoming.readableCount)
        s.incoming.consume(n)
        s.incoming.releaseIfEmpty()
        _ = nghttp2_session_consume(session, stream, n)
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


    /// Turns a fatal nghttp2 code into the connection's failure and queues the GOAWAY for it.
    func fail(libraryCode code: Int32) -> HTTP2Error {
        let (reason, goaway) = HTTP2ServerSession.classify(libraryCode: code, frameType: lastFrameType,
                                                           callbackFailure: callbackFailure)
        let e = HTTP2Error(reason, libraryCode: code)
        if failure == nil {
            failure = e
            _ = nghttp2_session_terminate_session(session, goaway)
        }
        return failure!
    }
}
