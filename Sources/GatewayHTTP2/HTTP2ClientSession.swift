// The client side of one HTTP/2 connection (toward an `h2` backend) on libnghttp2, with no I/O
// inside, in the shape of HTTP2ServerSession: the backend's bytes go in through `receive`,
// everything to send comes out through `write`, what happened comes out as HTTP2ClientEvent.
// nghttp2 does the framing, HPACK, stream states, flow-control accounting, the RFC 9113 §8
// response checks, and holds back request HEADERS over the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS; the Swift side keeps the per-stream buffers (HTTP2Session)
// and tells the caller how many streams it may open, so a pool never queues inside nghttp2.
import CNGHTTP2
import GatewayHTTP
import GatewaySystem

public final class HTTP2ClientSession: HTTP2Session {
    /// Which fields apply on this side: `maxConcurrentStreams` (our own cap on the streams we
    /// open, beside the peer's), `maxHeaderListSize` and `maxHeaders` (a response head or
    /// trailers over them reset the stream; 4× ends the connection), `initialWindowSize` and
    /// `connectionWindowSize` (the response body we accept unconsumed), `maxOutboundAck`,
    /// `maxSettingsEntries`, `maxContinuations`.
    public let config: HTTP2Config

    private var events = EventQueue<HTTP2ClientEvent>()

    /// The last stream id of the peer's GOAWAY, if one came: streams above it were never
    /// processed (RFC 9113 §6.8), a retry elsewhere is safe.
    public private(set) var peerLastStream: Int32?

    /// Creates the session and queues the connection preface and our SETTINGS (write them out
    /// with `write(into:)` right after the TLS handshake).
    public init(config: HTTP2Config = HTTP2Config(), pool: BufferPool? = nil) throws(HTTP2Error) {
        self.config = config
        super.init(pool: pool)
        // A backend connection multiplexes up to hundreds of streams: its tables stay grown.
        streams = StreamMap(keptSlots: 1024)
        finished = StreamMap(keptSlots: 1024)
        // Spares for a full connection's turnover (about 1 KB each with their head storage),
        // also while no stream is open: an origin answers a batch of streams in one read, all
        // of them close before the exchanges consume their bodies, and the next batch follows
        // at once (h2load -c4 -m250 through a `protocol h2` backend allocated a stream object
        // per request). Dropped by the idle sweep (BackendPool.releaseIdleHTTP2Memory).
        keptStreams = Int(config.maxConcurrentStreams)
        keepsSparesWhenIdle = true
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0 else { throw HTTP2Error("nghttp2_session_callbacks_new failed") }
        defer { nghttp2_session_callbacks_del(callbacks) }
        installClientCallbacks(callbacks)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw HTTP2Error("nghttp2_option_new failed") }
        defer { nghttp2_option_del(option) }
        // Window updates only as the caller consumes (a slow client cannot make us buffer more
        // of a backend's response than one window).
        nghttp2_option_set_no_auto_window_update(option, 1)
        // Until the backend's SETTINGS arrive, assume it takes 100 streams (RFC 9113 §6.5.2's
        // recommended minimum; nghttp2's default too, said here so `availableStreams` agrees).
        nghttp2_option_set_peer_max_concurrent_streams(option, 100)
        // The same backstop as the server side (the deb12u3 count trips on split frame headers).
        nghttp2_option_set_max_continuations(option, 9 * config.maxContinuations + 9)
        nghttp2_option_set_max_outbound_ack(option, config.maxOutboundAck)
        nghttp2_option_set_max_settings(option, config.maxSettingsEntries)
        // As on the server side: no closed streams kept for a priority tree.
        nghttp2_option_set_no_closed_streams(option, 1)

        try createSession(server: false, callbacks: callbacks, option: option)
        try submitSettings([
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(config.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(config.maxHeaderListSize)),
        ], connectionWindow: config.connectionWindowSize)
    }

    override var bodyName: String { "request body" }

    // MARK: streams

    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrived).
    public var peerMaxConcurrentStreams: Int {
        Int(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    /// How many more requests `request` accepts now: the peer's limit (and ours) minus the
    /// streams open, 0 after a GOAWAY either way, a failure, or when stream ids ran out.
    public var availableStreams: Int {
        guard failure == nil, !submittedGoaway, nghttp2_session_check_request_allowed(session) != 0 else { return 0 }
        return max(0, min(peerMaxConcurrentStreams, Int(config.maxConcurrentStreams)) - streams.count)
    }

    public var canOpenStream: Bool { availableStreams > 0 }

    /// Whether the peer's GOAWAY said it never processed `stream` (safe to send elsewhere).
    public func neverProcessed(_ stream: Int32) -> Bool { peerLastStream.map { stream > $0 } ?? false }

    /// Submits a request; returns its stream id. Field names are lower-cased and
    /// connection-specific fields dropped (`te` must be `trailers` if present). With
    /// `endStream` false a body follows through `sendData` and/or `sendTrailers`. Throws when
    /// `canOpenStream` is false: nghttp2 would hold the HEADERS back until a stream closes.
    public func request(method: UnsafeRawBufferPointer, scheme: UnsafeRawBufferPointer, authority: UnsafeRawBufferPointer,
                        path: UnsafeRawBufferPointer, headers: HTTP2Fields = HTTP2Fields(), endStream: Bool) throws(HTTP2Error) -> Int32 {
        // The typed throw stays outside the closure (a typed-throws closure crashes swiftc 6.3.1).
        let r: Result<Int32, HTTP2Error> = headers.bytes.withUnsafeBytes { raw in
            do throws(HTTP2Error) {
                return .success(try request(method: method, scheme: scheme, authority: authority, path: path,
                                            head: raw, fields: headers.fields, endStream: endStream))
            } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// `request` with the regular fields as ranges of `head` (an HTTP/1 head the gateway wrote),
    /// and `te: trailers` first among them when `trailersTE`.
    public func request(method: UnsafeRawBufferPointer, scheme: UnsafeRawBufferPointer, authority: UnsafeRawBufferPointer,
                        path: UnsafeRawBufferPointer, head: UnsafeRawBufferPointer, fields: [HTTPHeaderField],
                        trailersTE: Bool = false, endStream: Bool) throws(HTTP2Error) -> Int32 {
        if let failure { throw failure }
        guard canOpenStream else {
            throw HTTP2Error("request: no stream available (\(streams.count) open, peer allows \(peerMaxConcurrentStreams))")
        }
        // One literal (the optimizer keeps it on the stack; chosen between two, it was allocated).
        let pseudo: [(StaticString, UnsafeRawBufferPointer)] = [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)]
        let id = fields.withUnsafeBufferPointer { fields in
            withFieldArray(head, fields, pseudo: pseudo, te: trailersTE) { nva, count in
                if endStream { return nghttp2_submit_request(session, nil, nva, count, nil, nil) }
                var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readBody)
                return nghttp2_submit_request(session, nil, nva, count, &provider, nil)
            }
        }
        guard id > 0 else { throw HTTP2Error("nghttp2_submit_request failed", libraryCode: id) }
        let st = makeStream(id)
        st.hasProvider = !endStream
        st.outgoingEnd = endStream
        streams.insert(id, consume st)   // the spare's reference moves into the table
        return id
    }

    /// `request` with the pseudo-header fields as strings (tests, health checks).
    public func request(method: String, scheme: String = "https", authority: String, path: String,
                        headers: HTTP2Fields = HTTP2Fields(), endStream: Bool) throws(HTTP2Error) -> Int32 {
        let m = Array(method.utf8), s = Array(scheme.utf8), a = Array(authority.utf8), p = Array(path.utf8)
        // The typed throw stays outside the closures (a typed-throws closure crashes swiftc 6.3.1).
        let r: Result<Int32, HTTP2Error> = m.withUnsafeBytes { mb in s.withUnsafeBytes { sb in a.withUnsafeBytes { ab in p.withUnsafeBytes { pb in
            do throws(HTTP2Error) {
                return .success(try request(method: mb, scheme: sb, authority: ab, path: pb, headers: headers, endStream: endStream))
            } catch { return .failure(error) }
        } } } }
        return try r.get()
    }

    /// GOAWAY toward the backend (we close the connection): no new stream is opened; streams
    /// in flight finish, then `wantsRead` and `wantsWrite` turn false and the caller closes.
    public func goaway(code: UInt32 = HTTP2ErrorCode.noError) throws(HTTP2Error) {
        submittedGoaway = true
        // Last stream 0: with push off the backend opens no stream of its own for us to process.
        let rv = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, code, nil, 0)
        guard rv == 0 else { throw HTTP2Error("nghttp2_submit_goaway failed", libraryCode: rv) }
    }

    // MARK: events

    /// The next event, in the order things happened; nil when all were drained.
    public func nextEvent() -> HTTP2ClientEvent? { events.next() }

    func emit(_ e: consuming HTTP2ClientEvent) { events.append(e) }   // moved into the queue, not copied

    override func releaseEventStorage() { events.releaseIfEmpty() }

    override func dataReceived(_ id: Int32, count: Int) { emit(.data(stream: id, count: count)) }
    override func malformed(_ id: Int32, reason: String) { emit(.malformed(stream: id, reason: reason)) }

    /// Every stream the caller opened gets its close (it has to know which ones to retry). A
    /// response that ended cleanly keeps its unconsumed tail readable until consumed (its
    /// window went back to the connection at the close).
    override func streamClosed(_ st: HTTP2Stream, code: UInt32) -> Bool {
        emit(.streamClosed(stream: st.id, code: code))
        guard code == HTTP2ErrorCode.noError && !st.incoming.isEmpty else { return false }
        finished[st.id] = st
        return true
    }

    func recordPeerGoaway(_ last: Int32) { peerLastStream = last }
}

/// What happened on a backend connection, in order. The session only records; the caller acts.
public enum HTTP2ClientEvent: Sendable, Equatable {
    /// An interim 1xx response head (zero or more come before `.response`).
    case informational(stream: Int32, status: Int, fields: HTTP2Fields)
    /// The final response head (END_STREAM follows as `.endStream` if it had no body).
    case response(stream: Int32, status: Int, fields: HTTP2Fields)
    /// `count` more body bytes wait in the stream's receive buffer (`receivedBody`, then `consume`).
    case data(stream: Int32, count: Int)
    case trailers(stream: Int32, fields: HTTP2Fields)
    /// The backend finished its response (END_STREAM).
    case endStream(stream: Int32)
    /// The backend reset the stream (RST_STREAM with this code; REFUSED_STREAM: retry-safe).
    case reset(stream: Int32, code: UInt32)
    /// The response broke RFC 9113 §8 (`malformed header`, `malformed message`) or our limits
    /// (`header list too large`): the stream is reset and must not reach the client as it is.
    case malformed(stream: Int32, reason: String)
    /// The backend sent GOAWAY: streams above `lastStream` were never processed and close with
    /// REFUSED_STREAM (`.streamClosed`); no new stream may be opened.
    case goaway(code: UInt32, lastStream: Int32)
    /// The stream is gone. `code` REFUSED_STREAM: the backend never processed it (its
    /// RST_STREAM, a GOAWAY below it, or a request nghttp2 could not send after a GOAWAY).
    case streamClosed(stream: Int32, code: UInt32)
    /// The connection failed (nghttp2's own GOAWAY is in the output); open streams get no
    /// `.streamClosed`: the caller fails or retries them all.
    case connectionError(HTTP2Error)

    /// RFC 9113 §8.7: the backend did not process the request, so it may be sent again even
    /// when it is not idempotent.
    public var isRetrySafe: Bool {
        switch self {
        case .reset(_, let code), .streamClosed(_, let code): code == HTTP2ErrorCode.refusedStream
        default: false
        }
    }
}
