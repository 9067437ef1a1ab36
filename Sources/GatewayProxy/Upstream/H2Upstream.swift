import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// A connection to a `protocol h2` backend server (SPEC §12): one TLS connection — its socket,
/// handshake and events are an `UpstreamSession`'s, which it owns — and an nghttp2 client session
/// whose streams serve many exchanges at once, up to the backend's SETTINGS_MAX_CONCURRENT_STREAMS.
///
/// Exchanges never do I/O on it: they queue request parts on their stream and ask for a flush,
/// which runs at the end of the event batch (the frames of every stream answered in one batch
/// share one write). Its own socket events read the backend, record what each stream got on the
/// exchange (`BackendStream`) and then give those exchanges a turn — always from the top of the
/// loop, never inside another connection's step.
final class H2Upstream: EventHandler, BackendUser, TimerTarget {
    let link: UpstreamSession
    /// Set once the handshake selected `h2`; nil while connecting.
    private(set) var session: HTTP2ClientSession?
    /// unowned(unsafe): a worker lives as long as the process, beyond all its connections.
    unowned(unsafe) let worker: Worker
    /// Exchanges by the stream they opened, and those attached that have not opened theirs yet
    /// (before the handshake, or until their turn): they count against the streams it may open.
    private(set) var streams = StreamMap<Exchange>(keptSlots: 1024)
    private var waiting: [Exchange] = []
    /// Exchanges that got news from the backend in this round (kept: no allocation per round).
    private var touched: [Exchange] = []
    private var notifying: [Exchange] = []
    /// Exchanges whose request body filled their stream's buffer: a turn once it drained.
    private var blocked: [Exchange] = []
    /// It has served a stream before the one now failing (a failure may be a stale connection).
    var reused = false
    /// The backend's GOAWAY, or ours: no new stream; it closes once the open ones are done.
    private(set) var goingAway = false
    private(set) var closed = false
    var deadline: UInt64 = 0
    var timerSlot = 0
    /// Reused for every request head sent on it: the fields as ranges of the exchange's head
    /// bytes (nghttp2 copies them as it submits them).
    var fieldRanges: [HTTPHeaderField] = []

    /// Our own cap on streams per connection, beside the backend's.
    static let maxStreams: UInt32 = 256

    var backend: BackendRuntime { link.backend }
    var server: ServerTarget { link.server }
    var serverIndex: Int { link.serverIndex }
    /// Streams open or promised to waiting exchanges.
    var load: Int { streams.count + waiting.count }

    /// Whether one more exchange may use it now.
    var acceptsStream: Bool {
        guard !closed, !goingAway else { return false }
        // Before its SETTINGS: RFC 9113 §6.5.2's minimum of 100.
        return withSession { $0.availableStreams > waiting.count } ?? (waiting.count < 100)
    }

    /// The session at +0. Invariant: `self` holds it until `close`, which hands it to the loop
    /// until the end of the batch.
    @inline(__always) func withSession<R>(_ body: (HTTP2ClientSession) -> R) -> R? {
        guard let s = session.map({ Unmanaged.passUnretained($0) }) else { return nil }
        return s._withUnsafeGuaranteedRef(body)
    }

    init(worker: Worker, backend: BackendRuntime, serverIndex: Int, session: TLSResumption?) throws(ProxyError) {
        self.worker = worker
        link = try UpstreamSession(worker: worker, backend: backend, serverIndex: serverIndex, session: session)
        super.init()
        link.owner = self
    }

    // MARK: - Exchanges

    /// The exchange will open a stream here (at once when ready, else after the handshake); it
    /// then sets its `backendStream` to this connection.
    func attach(_ ex: Exchange) {
        if deadline != 0 { worker.loop.cancel(self); deadline = 0 }
        waiting.append(ex)
    }

    /// Opens the exchange's stream on `s` (this connection's session, at +0) with its request
    /// head (`fields`: ranges of `head`); the stream id, or nil when the connection cannot take
    /// it after all (the exchange fails over, retry-safe).
    func open(_ ex: Exchange, _ s: HTTP2ClientSession, method: UnsafeRawBufferPointer, authority: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer,
              head: UnsafeRawBufferPointer, fields: [HTTPHeaderField], trailersTE: Bool, endStream: Bool) -> Int32? {
        guard !closed else { return nil }
        if let i = waiting.firstIndex(where: { $0 === ex }) { waiting.remove(at: i) }
        let scheme: StaticString = "https"
        let id = try? s.request(method: method, scheme: UnsafeRawBufferPointer(start: scheme.utf8Start, count: scheme.utf8CodeUnitCount),
                                authority: authority, path: path, head: head, fields: fields, trailersTE: trailersTE, endStream: endStream)
        guard let id else { return nil }
        streams[id] = ex
        needsFlush()
        return id
    }

    /// The exchange lets its stream go: finished (`cancel` false), or given up (the stream is
    /// reset with CANCEL if it is still open). The connection idles once no stream is left.
    func detach(_ ex: Exchange, cancel: Bool) {
        guard ex.backendStream.conn === self else { return }
        let id = ex.backendStream.id
        if id != 0, streams.withValue(id, { $0 === ex }) == true {
            streams.removeValue(forKey: id)
            if cancel { withSession { $0.reset(id, code: HTTP2ErrorCode.cancel) } }
        } else if let i = waiting.firstIndex(where: { $0 === ex }) {
            waiting.remove(at: i)
        }
        if id != 0 { withSession { $0.consume(id, $0.receivedBody(id).count) } }   // a tail nobody reads
        ex.backendStream = BackendStream()
        reused = true
        needsFlush()
        worker.pool.streamEnded(self)
    }

    /// The exchange stops feeding its request body until nghttp2 has taken some (the backend's window).
    func bodyBlocked(_ ex: Exchange) {
        if !blocked.contains(where: { $0 === ex }) { blocked.append(ex) }
    }

    /// Frames queued by an exchange (a head, body, window update) go out at the end of the batch.
    func needsFlush() {
        if !closed && !batchQueued { worker.loop.afterBatch(self) }   // asked only when needed: asking retains the loop and self
    }

    // MARK: - Events

    /// The socket's events (through the `UpstreamSession`): the handshake, then the backend's frames.
    func drive() {
        guard !closed else { return }
        if session == nil {
            switch link.advanceHandshake() {
            case .inProgress: return
            case .failed(let f): fail(f, sent: false); return
            case .ready: start()
            }
            guard !closed else { return }
        }
        receive()
        flush()
        notify()
    }

    private func start() {
        if let why = backend.tls.protocolMismatch(link.tls) {
            fail(ProxyError(.badGateway, "backend \(server.label): \(why)", metric: .protocol), sent: false)
            return
        }
        var config = HTTP2Config()
        config.maxConcurrentStreams = Self.maxStreams
        config.maxHeaderListSize = 64 * 1024
        config.maxHeaders = 256
        do { session = try HTTP2ClientSession(config: config, pool: worker.buffers) } catch {
            fail(ProxyError(.badGateway, "HTTP/2 session for \(server.label): \(error)", metric: .protocol), sent: false)
            return
        }
        touched.append(contentsOf: waiting)   // they open their streams on their turn
    }

    /// Reads what the backend sent and records it per stream. Reading is bounded by HTTP/2 flow
    /// control (a stream's window opens only as its client takes the response).
    private func receive() {
        guard let s = session else { return }
        while !closed {
            if !link.io.input.isEmpty {
                do { link.io.input.consume(try s.receive(link.io.input.readable)) } catch {
                    fail(ProxyError(.badGateway, "backend \(server.label) HTTP/2 error: \(error.reason)", metric: .protocol), sent: true)
                    return
                }
                dispatch(s)
            }
            guard !closed else { return }
            switch link.io.read(minimum: 16 * 1024) {
            case .done: continue
            case .wantRead, .wantWrite:
                link.io.input.releaseIfEmpty()
                return
            case .closed, .failed:
                fail(ProxyError(.badGateway, "backend \(server.label) closed the HTTP/2 connection", metric: .reset), sent: true, closedUnder: true)
                return
            }
        }
    }

    private func dispatch(_ s: HTTP2ClientSession) {
        while let e = s.nextEvent() {
            switch consume e {   // the fields moved on, not copied
            case .informational:
                break   // the final head follows
            case .response(let id, let status, let fields):
                record(id) { $0.status = status; $0.head = fields }
            case .data(let id, _):
                record(id) { _ in }
            case .trailers(let id, let fields):
                record(id) { $0.trailers = fields }
            case .endStream(let id):
                record(id) { $0.ended = true }
            case .reset:
                break   // `.streamClosed` follows with the code
            case .malformed(let id, let reason):
                let label = server.label
                record(id) { $0.failure = ProxyError(.badGateway, "backend \(label) sent an invalid response: \(reason)", metric: .protocol) }
            case .streamClosed(let id, let code):
                guard let ex = streams[id] else { break }
                if !ex.backendStream.ended && ex.backendStream.failure == nil {
                    // REFUSED_STREAM, or above a GOAWAY's last stream: never processed, safe to send again.
                    let safe = code == HTTP2ErrorCode.refusedStream || s.neverProcessed(id)
                    ex.backendStream.failure = ProxyError(.badGateway, "backend \(server.label) reset the stream (HTTP/2 error \(code))",
                                                          retrySafe: safe, metric: .reset)
                }
                touch(ex)
            case .goaway:
                goingAway = true   // finished streams stay good; those above its last id close REFUSED
            case .connectionError(let error):
                fail(ProxyError(.badGateway, "backend \(server.label) HTTP/2 error: \(error.reason)", metric: .protocol), sent: true)
                return
            }
        }
    }

    private func record(_ id: Int32, _ change: (inout BackendStream) -> Void) {
        _ = streams.withValue(id) { ex in
            change(&ex.backendStream)
            touch(ex)
        }
    }

    /// Queues the exchange for `notify`. A stream's events mostly come one after another (head,
    /// data, end, close), so one just queued is not queued again: a repeat would only drive it a
    /// second time with nothing new.
    private func touch(_ ex: Exchange) {
        if touched.last !== ex { touched.append(ex) }
    }

    /// Everything nghttp2 has to send, to the socket.
    private func flush() {
        guard let s = session, !closed else { return }
        repeat {
            do { try s.write(into: &link.io.output, limit: 256 * 1024) } catch {
                fail(ProxyError(.badGateway, "backend \(server.label) HTTP/2 error: \(error.reason)", metric: .protocol), sent: true)
                return
            }
            var progress = false
            guard link.io.flush(progress: &progress) else {
                fail(ProxyError(.badGateway, "backend \(server.label) failed while sending", metric: .reset), sent: true)
                return
            }
            guard link.io.output.isEmpty else { return }   // the socket's writable edge brings us back
        } while s.wantsWrite
        link.io.output.releaseIfEmpty()
        var i = 0
        while i < blocked.count {
            let ex = blocked[i]
            if ex.backendStream.conn !== self || s.outgoingBuffered(ex.backendStream.id) < ClientConnection.highWater {
                touched.append(ex)
                blocked.swapAt(i, blocked.count - 1)
                blocked.removeLast()
            } else {
                i += 1
            }
        }
        // After a GOAWAY both ways, with every stream done: nothing more will happen here.
        if goingAway && load == 0 && !s.wantsRead { worker.pool.discard(self) }
    }

    /// Gives the exchanges that got news their turn (each drives its client connection).
    private func notify() {
        while !touched.isEmpty {
            swap(&touched, &notifying)
            // Every touched stream is queued first, so one drive of a client connection moves
            // all of its streams that got news, not one connection round per stream.
            do {   // the copy goes before removeAll, which then keeps the storage
                let list = notifying
                list.forEachUnretained { if $0.isOpen { $0.turn = true } }
                list.forEachUnretained { if $0.turn { $0.drive() } }
            }
            notifying.removeAll(keepingCapacity: true)
        }
    }

    override func endOfBatch() {
        flush()
        notify()
    }

    /// Idle past `keepalive_timeout`, or the keep-alive limit: a GOAWAY and the close.
    func deadlineExpired(now: UInt64) {
        if load == 0 { worker.pool.discard(self) }
    }

    /// The connection is dead: every exchange on it learns why on its next turn. Those that had
    /// not opened a stream (`sent` false covers the handshake) can go elsewhere; so can those
    /// without an answer on a reused connection the server closed without a GOAWAY (`closedUnder`:
    /// most likely it timed the idle connection out as the request left, as with HTTP/1.1).
    private func fail(_ failure: ProxyError, sent: Bool, closedUnder: Bool = false) {
        guard !closed else { return }
        for ex in waiting {
            var f = failure
            f.retrySafe = true
            ex.backendStream.failure = f
            touched.append(ex)
        }
        for ex in streams.values {
            var f = failure
            f.retrySafe = failure.retrySafe || !sent || (session?.neverProcessed(ex.backendStream.id) ?? false)
                || (closedUnder && reused && ex.backendStream.status == 0)
            ex.backendStream.failure = f
            touched.append(ex)
        }
        streams.removeAll()
        waiting = []
        blocked = []
        worker.pool.discard(self)
        notify()
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.cancel(self)
        if let s = session {
            // A parting GOAWAY where the socket takes it; nothing waits for it.
            try? s.goaway()
            try? s.write(into: &link.io.output)
            var progress = false
            _ = link.io.flush(progress: &progress)
        }
        link.close()
        // Exchange.withBackendConnection's invariant: one closed in this batch, and its session,
        // outlive the step that holds them at +0.
        worker.loop.keepUntilEndOfBatch(self)
        if let s = session.take() { worker.loop.keepUntilEndOfBatch(s) }
    }
}

/// An exchange's stream on an `h2` backend connection, and what the backend sent on it that
/// the exchange has not handed on yet.
struct BackendStream {
    var conn: H2Upstream?
    var id: Int32 = 0
    var status = 0
    /// The final response head, until the exchange starts the response with it.
    var head: HTTP2Fields?
    var trailers: HTTP2Fields?
    /// END_STREAM from the backend (the body may still sit in the session's buffer).
    var ended = false
    /// The stream or connection failed; the exchange retries or answers on its next turn.
    var failure: ProxyError?

    /// Nothing set (the exchange never used an h2 backend, or let its stream go).
    var isEmpty: Bool { conn == nil && head == nil && trailers == nil && failure == nil && id == 0 }
}
