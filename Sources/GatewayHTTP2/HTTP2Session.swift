// What both ends of an HTTP/2 connection share, whichever side we are: the nghttp2 session made
// from page memory, the stream table with its per-stream buffers, bytes in through `receive`
// and out through `write`, body bytes in both directions (`sendData`/`sendTrailers` through a
// data provider, `receivedBody`/`consume` with automatic window updates off), resets, and the
// failure reasons. HTTP2ServerSession (toward clients) and HTTP2ClientSession (toward backends)
// add their own heads, limits and events.
import CGatewayShims
import CNGHTTP2
import GatewaySystem

public class HTTP2Session {
    /// The nghttp2 session; its user_data is `self` unretained. Invariant: the session is
    /// deleted in `deinit`, so no callback can run after `self` is gone.
    var session: OpaquePointer?
    /// The page memory nghttp2's blocks come from (freed after the session, in deinit).
    let arena = gw_page_arena_new()
    /// Idle-memory sweeps (`releaseIdleMemory`) since bytes last went in or out.
    var quietSweeps = 0
    var streams = StreamMap<HTTP2Stream>()
    /// Client side: streams nghttp2 closed cleanly while the caller had not consumed all their
    /// body yet (the response's tail), kept until it has (the server side never fills this).
    var finished = StreamMap<HTTP2Stream>()
    let pool: BufferPool?
    /// Closed streams' objects, kept for the next streams (one allocation per stream otherwise),
    /// up to `keptStreams`; dropped with the rest of an idle connection's memory.
    var spareStreams: [HTTP2Stream] = []
    var keptStreams = 32
    /// Spares are kept also when the last open stream closes (see `recycle`).
    var keepsSparesWhenIdle = false

    /// Set once the connection is dead (a fatal receive error or a GOAWAY nghttp2 sent itself).
    public internal(set) var failure: HTTP2Error?
    /// Reason and GOAWAY code one of our callbacks set before failing the session (a limit or
    /// rule we enforce ourselves).
    var callbackFailure: (reason: String, code: UInt32)?
    /// The caller submitted a GOAWAY: one with an error code is not a library-detected failure.
    var submittedGoaway = false
    /// The type of the frame being read, to name a flood (SETTINGS or PING).
    var lastFrameType: UInt8 = 0
    /// The caller's sink while `write(into:)` runs: DATA payloads go straight from a stream's
    /// outgoing buffer into it (NGHTTP2_DATA_FLAG_NO_COPY), not through nghttp2's frame buffer.
    /// Only set during that call, which the sink outlives. mem_send hands every other frame back
    /// as soon as it is serialized and calls the DATA callback in between, so order holds.
    var sink: UnsafeMutablePointer<ByteBuffer>?
    /// Scratch for lower-casing outgoing field names (kept: no allocation per head). Raw memory,
    /// owned here (freed in deinit): an array in a class property was retained around each use.
    var nameScratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// The stream whose header block is being decoded, so each field's callback reaches it
    /// without a table lookup and a retain. Unmanaged: set at its begin_headers while the table
    /// holds it, cleared when nghttp2 closes it (before the table lets it go).
    var decoding: Unmanaged<HTTP2Stream>?

    /// One decoded header field of stream `id`, for either side's on_header callback: `record`
    /// stores it by that side's rule; decoding on far past the limit is an HPACK bomb's CPU, so
    /// it ends the connection. +0 throughout (it runs once per field).
    @inline(__always) func headerField(_ id: Int32, fatalListSize: Int, _ record: (HTTP2Stream) -> Void) -> Int32 {
        withHeaderStream(id) { st in
            record(st)
            guard st.headerListSize > fatalListSize else { return 0 }
            callbackFailure = ("header list too large", HTTP2ErrorCode.enhanceYourCalm)
            return failCallback
        } ?? 0
    }

    /// `body` with the stream a header field belongs to (+0: no retain), nil for an unknown stream.
    @inline(__always) func withHeaderStream<R>(_ id: Int32, _ body: (HTTP2Stream) -> R) -> R? {
        if let d = decoding, let r = d._withUnsafeGuaranteedRef({ $0.id == id ? body($0) : nil }) { return r }
        guard let st = streams[id] else { return nil }
        return body(st)
    }

    init(pool: BufferPool?) { self.pool = pool }

    deinit {
        nghttp2_session_del(session)
        gw_page_arena_free(arena)
        nameScratch.deallocate()
    }

    /// `nameScratch` with room for `count` bytes.
    func nameScratch(atLeast count: Int) -> UnsafeMutableRawBufferPointer {
        if nameScratch.count < count {
            nameScratch.deallocate()
            nameScratch = .allocate(byteCount: max(count, 2 * nameScratch.count, 256), alignment: 8)
        }
        return nameScratch
    }

    /// Makes the nghttp2 session, `server` or client, with `self` as user_data.
    func createSession(server: Bool, callbacks: OpaquePointer?, option: OpaquePointer?) throws(HTTP2Error) {
        // Invariant: `self` outlives the session (deleted in deinit), so the unretained pointer is valid in every callback.
        let me = Unmanaged.passUnretained(self).toOpaque()
        var s: OpaquePointer?
        // nghttp2's own blocks from page memory: its 16 KiB frame buffer and 4 KiB tables are
        // mostly unwritten on an idle connection, and unwritten pages cost no RSS (35.3 -> 30.3 KB
        // per idle HTTP/2 connection, 1,000 held after one request each). nghttp2 copies the struct.
        guard let arena else { throw HTTP2Error("out of memory for the nghttp2 session") }
        var mem = nghttp2_mem(mem_user_data: UnsafeMutableRawPointer(arena), malloc: gw_page_malloc, free: gw_page_free,
                              calloc: gw_page_calloc, realloc: gw_page_realloc)
        let rv = server ? nghttp2_session_server_new3(&s, callbacks, me, option, &mem)
                        : nghttp2_session_client_new3(&s, callbacks, me, option, &mem)
        guard rv == 0, let s else {
            throw HTTP2Error(server ? "nghttp2_session_server_new3 failed" : "nghttp2_session_client_new3 failed", libraryCode: rv)
        }
        session = s
    }

    /// Queues our SETTINGS, then what must follow them at once (`then`: a server's ORIGIN frame),
    /// then raises the connection-level receive window to `connectionWindow`.
    func submitSettings(_ entries: [nghttp2_settings_entry], connectionWindow: Int32,
                        then: () throws(HTTP2Error) -> Void = {}) throws(HTTP2Error) {
        var settings = entries
        let srv = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        guard srv == 0 else { throw HTTP2Error("nghttp2_submit_settings failed", libraryCode: srv) }
        try then()
        if connectionWindow > 65535 {
            let wrv = nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, connectionWindow)
            guard wrv == 0 else { throw HTTP2Error("nghttp2_session_set_local_window_size failed", libraryCode: wrv) }
        }
    }

    // MARK: bytes in, bytes out

    /// Feeds the peer's bytes. Returns how many were used (all of them unless it throws).
    /// Throws when the connection cannot go on: a GOAWAY is queued then, so the caller writes
    /// the output out and closes. A failure nghttp2 handles without failing this call (it
    /// queues its own GOAWAY) arrives as a `connectionError` event when `write` emits that
    /// GOAWAY. Either way a connection reports one failure.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2Error) -> Int {
        if let failure { throw failure }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        quietSweeps = 0
        let n = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if n < 0 { throw fail(libraryCode: Int32(n)) }
        return n
    }

    /// Appends what nghttp2 has to send (frames, as many as fit under `limit` bytes in `sink`)
    /// to `sink`. Call after `receive` and after actions; `wantsWrite` says whether more waits.
    public func write(into sink: inout ByteBuffer, limit: Int = .max) throws(HTTP2Error) {
        quietSweeps = 0
        try withUnsafeMutablePointer(to: &sink) { (out: UnsafeMutablePointer<ByteBuffer>) throws(HTTP2Error) in
            self.sink = out
            defer { self.sink = nil }
            while out.pointee.readableCount < limit {
                var p: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(session, &p)
                if n < 0 { throw fail(libraryCode: Int32(n)) }
                guard n > 0, let p else { return }
                out.pointee.append(UnsafeRawBufferPointer(start: p, count: n))
            }
        }
    }


    /// Whether nghttp2 still wants the peer's bytes; false after a fatal error and once a
    /// GOAWAY went out and no stream is open (then close when `wantsWrite` is false too).
    public var wantsRead: Bool { failure == nil && nghttp2_session_want_read(session) != 0 }
    /// Whether `write` has something to emit (false while every stream with a body to send
    /// waits for `sendData`).
    public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    /// Streams open on the connection (server: a head was delivered or is being received;
    /// client: requests submitted and not yet closed).
    public var openStreams: Int { streams.count }

    // MARK: idle memory

    /// Called by a periodic sweep (every second or so): on the second sweep in a row that finds
    /// the connection idle (no stream, nothing to send, no byte in or out in between) the memory
    /// that holds nothing is given back — nghttp2's written pages that are zeros or stale frame
    /// bytes, and our own tables and scratch — so an idle connection costs its live state only.
    /// Not at the moment it becomes idle: a client with one request after another would pay
    /// the page faults and allocations again on every request. Returns nghttp2's bytes given
    /// back, nil when the connection was not (newly) idle.
    public func releaseIdleMemory() -> Int? {
        quietSweeps += 1
        guard quietSweeps == 2, streams.isEmpty, finished.isEmpty, !wantsWrite else { return nil }
        streams.removeAll()   // keeps the owner's keptSlots
        finished.removeAll()
        nameScratch.deallocate()
        nameScratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        spareStreams = []
        releaseEventStorage()
        return gw_page_arena_trim(arena)
    }

    /// The event queue's storage, when it is empty (the subclass that has one).
    func releaseEventStorage() {}

    // MARK: received bodies

    /// The stream's received body bytes the caller has not consumed (valid until the next call
    /// into the session). Empty for an unknown stream.
    public func receivedBody(_ stream: Int32) -> UnsafeRawBufferPointer {
        // The stream object at +0 (StreamMap.withValue): called several times a request.
        streams.withValue(stream) { $0.incoming.readable } ?? finished.withValue(stream) { $0.incoming.readable }
            ?? UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// The caller has taken `count` body bytes of the stream (the other side accepted them):
    /// they leave the receive buffer and count toward the stream's and the connection's
    /// WINDOW_UPDATE. Nothing else opens the window (automatic window updates are off).
    public func consume(_ stream: Int32, _ count: Int) {
        // Closed: nghttp2 forgot the stream and has its window back already.
        if !finished.isEmpty, let drained = finished.withValue(stream, { s in
            s.incoming.consume(min(count, s.incoming.readableCount))
            return s.incoming.isEmpty
        }) {
            if drained, let s = finished.removeValue(forKey: stream) { recycle(s) }
            return
        }
        guard count > 0, let n = streams.withValue(stream, { s in
            let n = min(count, s.incoming.readableCount)
            s.incoming.consume(n)
            s.incoming.releaseIfEmpty()
            return n
        }) else { return }
        _ = nghttp2_session_consume(session, stream, n)
    }

    // MARK: sent bodies

    /// The stream `call` adds body or trailers to: open, with a data provider, not ended yet.
    @inline(__always) private func bodyStream(_ stream: Int32, _ call: StaticString) throws(HTTP2Error) -> HTTP2Stream {
        guard let st = streams[stream], st.hasProvider, !st.outgoingEnd else {
            throw HTTP2Error("\(call): stream \(stream) has no open \(bodyName)")
        }
        return st
    }

    /// Queues body bytes (copied into the stream's outgoing buffer, which nghttp2 drains as the
    /// peer's flow-control window allows). Keep `outgoingBuffered` bounded: stop reading the
    /// source while it is over your limit.
    public func sendData(_ stream: Int32, _ bytes: UnsafeRawBufferPointer, endStream: Bool) throws(HTTP2Error) {
        // At +0 (StreamMap.withValue): once or more a request.
        let queued = streams.withValue(stream) { st in
            guard st.hasProvider, !st.outgoingEnd else { return false }
            st.outgoing.append(bytes)
            st.outgoingEnd = endStream
            resumeIfDeferred(st)
            return true
        }
        if queued != true { _ = try bodyStream(stream, "sendData") }   // throws what is missing
    }

    /// Queues all of `buffer`'s bytes and leaves it empty: its memory moves to the stream when the
    /// stream's queue has a free place (`ByteQueue.take`), so a large body is not copied on its way
    /// from the backend's input to the client's output but once.
    public func sendData(_ stream: Int32, taking buffer: inout ByteBuffer) throws(HTTP2Error) {
        // At +0, like the copying form.
        let queued = streams.withValue(stream) { st in
            guard st.hasProvider, !st.outgoingEnd else { return false }
            st.outgoing.take(&buffer)
            resumeIfDeferred(st)
            return true
        }
        if queued != true { _ = try bodyStream(stream, "sendData") }   // throws what is missing
    }

    /// Ends the body with trailers (gRPC's grpc-status); a trailers-only message is a head with
    /// `endStream: false` followed by this.
    public func sendTrailers(_ stream: Int32, _ fields: HTTP2Fields) throws(HTTP2Error) {
        let st = try bodyStream(stream, "sendTrailers")
        st.pendingTrailers = fields
        st.outgoingEnd = true
        resumeIfDeferred(st)
    }

    /// Body bytes queued on the stream that nghttp2 has not taken yet (0 for a closed stream).
    public func outgoingBuffered(_ stream: Int32) -> Int { streams[stream]?.outgoing.readableCount ?? 0 }
    /// Whether the stream takes more body: under `limit` bytes queued and a place free for a
    /// buffer handed over whole (so that it is not copied).
    public func canQueue(_ stream: Int32, below limit: Int) -> Bool {
        guard let st = streams[stream] else { return true }
        return st.outgoing.readableCount < limit && !st.outgoing.isFull
    }

    /// Resets the stream (RST_STREAM with `code`); its later DATA is dropped.
    public func reset(_ stream: Int32, code: UInt32) {
        if !finished.isEmpty, let st = finished.removeValue(forKey: stream) { recycle(st) }
        streams[stream]?.discarding = true
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, code)
    }

    /// The object for a new stream `id`: a spare one reset (`reuse`), else a new one.
    func makeStream(_ id: Int32) -> HTTP2Stream {
        guard let st = spareStreams.popLast() else { return HTTP2Stream(id: id, pool: pool) }
        st.reuse(id: id)
        return st
    }

    /// A stream nghttp2 closed, out of every table: its object is kept for a later stream while
    /// the session has other streams open (a busy connection's next stream takes it). The last
    /// one of a connection going idle is freed at once, for the next connection to use: kept
    /// until the idle sweep, every new connection allocated its own, and an idle HTTP/2
    /// connection cost 24.1 KB instead of 22.4 (scripts/bench mem_idle_h2). A backend
    /// connection keeps it (`keepsSparesWhenIdle`).
    /// Only the session ever held it (`decoding` was cleared at the close), so a reused object
    /// is never seen under its old id.
    func recycle(_ st: consuming HTTP2Stream) {
        guard keepsSparesWhenIdle || !streams.isEmpty, spareStreams.count < keptStreams else { return }
        st.clear()
        spareStreams.append(st)
    }

    /// "response body" or "request body", for error messages.
    var bodyName: String { "body" }

    func resumeIfDeferred(_ st: HTTP2Stream) {
        guard st.deferred else { return }
        st.deferred = false
        _ = nghttp2_session_resume_data(session, st.id)
    }

    // MARK: hooks of the shared callbacks

    /// `count` DATA bytes were appended to the stream's receive buffer.
    func dataReceived(_ id: Int32, count: Int) {}
    /// nghttp2 closed a stream that was in the table (already removed from it); true when the
    /// session keeps the object (else it is recycled for a later stream).
    func streamClosed(_ st: HTTP2Stream, code: UInt32) -> Bool { false }
    /// A stream nghttp2 reset as malformed (RFC 9113 §8.1.1).
    func malformed(_ id: Int32, reason: String) {}

    /// A RST_STREAM PROTOCOL_ERROR we are sending: nghttp2 resets a stream whose DATA disagrees
    /// with content-length without calling on_invalid_frame_recv, so it is reported here
    /// (streams already reported as malformed, or reset by the caller, are marked discarding).
    func reportIfContentLengthReset(_ id: Int32) {
        guard let st = streams[id], !st.discarding else { return }
        st.discarding = true
        malformed(id, reason: "malformed message")
    }

    /// A GOAWAY with an error that neither we nor the caller queued: nghttp2 closed the
    /// connection on its own (the caller learns it as a connection error).
    func ownGoawayFailure(_ code: UInt32) -> Bool {
        code != HTTP2ErrorCode.noError && failure == nil && !submittedGoaway
    }

    // MARK: failures

    /// Turns a fatal nghttp2 code into the connection's failure and queues the GOAWAY for it.
    func fail(libraryCode code: Int32) -> HTTP2Error {
        let (reason, goaway) = Self.classify(libraryCode: code, frameType: lastFrameType, callbackFailure: callbackFailure)
        let e = HTTP2Error(reason, libraryCode: code)
        if failure == nil {
            failure = e
            _ = nghttp2_session_terminate_session(session, goaway)
        }
        return failure!
    }
}

/// The events a session recorded and the caller has not drained yet, in order.
struct EventQueue<Event> {
    /// Taken events leave nil behind (`take` moves the event out; see `next`).
    private var events: [Event?] = []
    private var head = 0

    mutating func append(_ e: consuming Event) { events.append(e) }

    /// Lets its storage go when nothing is queued (an idle connection).
    mutating func releaseIfEmpty() { if head == events.count { events = []; head = 0 } }

    mutating func next() -> Event? {
        guard head < events.count else { return nil }
        // Moved out, not copied: a copy retains the payload (a head's storage, a reason) and the
        // queue would keep it alive until drained, so the caller's copy would not be the only one.
        let e = events[head].take()
        head += 1
        if head == events.count { events.removeAll(keepingCapacity: true); head = 0 }
        return e
    }
}
