import Glibc
import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// Serving an HTTP/2 connection: the client's bytes go through nghttp2 (HTTP2Downstream), each
/// stream becomes an exchange that takes the same steps as an HTTP/1 request (startExchange,
/// the exchange's upstream and response sides), and the session's frames go back out.
extension ClientConnection {
    /// After ALPN chose h2: our SETTINGS, then the ORIGIN frame (RFC 8336), then streams.
    func startHTTP2() {
        do {
            let listen = snapshot.config.listeners[listenerIndex]
            var origins: [String] = []
            if let host = tls.host, let name = tls.serverName ?? listen.defaultHost {
                origins = snapshot.origins(host: host.index, name: name, listener: listen)
            }
            http2Ref = Unmanaged.passRetained(try HTTP2Downstream(limits: limits, pool: worker.buffers, origins: origins))
            exchanges.keepRoom(for: limits.http2MaxConcurrentStreams)
            setDeadline(limits.idleTimeoutMs)
        } catch {
            worker.logs.error.log(.error, "http2_setup_failed", error.description)
            close()
        }
    }

    func serveHTTP2(_ h2: HTTP2Downstream) {
        var progress = true
        var rounds = 0
        while progress && phase == .serving && rounds < 64 {
            progress = false
            rounds += 1
            if receiveHTTP2(h2) { progress = true }
            while phase == .serving, let e = h2.nextEvent() {
                handle(e, h2)
                progress = true
            }
            guard phase == .serving else { return }
            swap(&turns, &turnQueue)
            do {   // the copy goes before removeAll, which then keeps the storage
                let list = turns
                list.forEachUnretained { ex in
                    ex.turn = false
                    guard ex.isOpen else { return }   // finished by an earlier one's step
                    if forwardStream(ex, h2) { ex.turn = true; progress = true }
                }
            }
            turns.removeAll(keepingCapacity: true)
            guard phase == .serving else { return }
            if closeAfterResponse && !h2.noticed { goAway(h2) }   // max_requests_per_connection
            if flushHTTP2(h2) {
                progress = true
                wakeWaiting()   // frames taken: streams held back by their window or the client's pace may move again
            }
            guard phase == .serving else { return }
            // What the flush raised (a GOAWAY nghttp2 queued itself is noticed as it goes out, as
            // `.connectionError`) is handled before the close below, so it is logged and counted.
            while phase == .serving, let e = h2.nextEvent() {
                handle(e, h2)
                progress = true
            }
            guard phase == .serving else { return }
            // The client's GOAWAY or ours, and every stream done: nothing more will happen here.
            if exchanges.isEmpty && !h2.session.wantsRead && !h2.session.wantsWrite && io.output.isEmpty {
                beginClose()
                return
            }
        }
        if progress && phase == .serving { anotherTurn = true }
    }

    /// Reads the client and feeds nghttp2, while the connection's output is not backed up (a
    /// client that does not read its responses is not read either).
    private func receiveHTTP2(_ h2: HTTP2Downstream) -> Bool {
        var progress = false
        while phase == .serving {
            if !io.input.isEmpty {
                do { io.input.consume(try h2.session.receive(io.input.readable)) } catch {
                    http2Failed(h2, error)
                    return true
                }
                progress = true
            }
            guard io.output.readableCount < Self.highWater, readClient() else { break }
        }
        return progress
    }

    /// Consumes the event: its head is moved out, not copied (the stream keeps the head's
    /// storage for its next head, which is free only once no copy is left).
    private func handle(_ e: consuming HTTP2Event, _ h2: HTTP2Downstream) {
        switch consume e {
        case .request(let s, let head):
            let ends = h2.headEndsStream(s)
            startStream(StreamID(s), head, endStream: ends)
        case .headersTooLarge(let s):
            let ex = openExchange(StreamID(s))
            ex.clientEnded = true
            ex.turn = true
            // A :path over max_uri_size is 414 even when the head is over max_header_size too (SPEC §10).
            let path = h2.session.requestPathLength(s)
            respondLocally(ex, path > limits.maxURISize ? .client(414, ":path of \(path) bytes over max_uri_size")
                                                         : .client(431, "request header list over max_header_size or max_headers"), close: true)
        case .malformed(let s, let reason):
            worker.logs.error.log(.info, "http2_stream_reset", "malformed request reset with PROTOCOL_ERROR: \(reason)",
                                  [("client", .string(clientIP)), ("stream", .int(Int(s)))])
        case .data(let s, _):
            _ = withExchange(StreamID(s)) { $0.turn = true }   // taken from the stream's buffer as its backend can take it
        case .trailers(let s, let fields):
            // Sent on after the body: HTTP/2 trailers to an h2 backend, chunked trailers to HTTP/1.1.
            _ = withExchange(StreamID(s)) { ex in ex.requestTrailers = fields; ex.clientEnded = true; ex.turn = true }
        case .endStream(let s):
            _ = withExchange(StreamID(s)) { ex in ex.clientEnded = true; ex.turn = true }
        case .reset(let s, _), .streamClosed(let s, _):
            _ = withExchange(StreamID(s)) { ex in if !finishStream(ex, h2, closed: true) { streamGone(ex) } }
        case .goaway:
            break   // nghttp2 refuses new streams; the open ones finish, then serveHTTP2 closes
        case .connectionError(let error):
            http2Failed(h2, error)
        }
    }

    /// A request head on a new stream: the same steps as an HTTP/1 head, over bytes the stream owns.
    private func startStream(_ stream: StreamID, _ head: HTTP2RequestHead, endStream: Bool) {
        defer { _ = withExchange(stream) { ex in ex.clientEnded = endStream; ex.turn = true } }
        head.fields.fields.withUnsafeBufferPointer { fields in
            guard let request = HTTP2Downstream.requestHead(head, fields, endStream: endStream) else {
                respondLocally(openExchange(stream), .client(501, "CONNECT is not supported"), close: true)
                return
            }
            if request.target.count > limits.maxURISize {
                respondLocally(openExchange(stream), .client(414, ":path of \(request.target.count) bytes over max_uri_size"), close: true)
                return
            }
            head.fields.bytes.withUnsafeBytes { startExchange(request, $0, stream: stream) }
        }
    }

    /// One stream's progress: its backend's handshake, body from the stream's buffer to the
    /// backend as it takes it (the client's window opens only as bytes leave), the response back.
    private func forwardStream(_ ex: Exchange, _ h2: HTTP2Downstream) -> Bool {
        guard ex.advanceUpstream() else { return false }   // connecting: its socket's event comes back here
        guard ex.isOpen else { return true }
        var progress = ex.sendHead()
        let stream = Int32(ex.stream)
        if !ex.state.requestEnded {
            let dropping = ex.state.local || !ex.hasUpstream
            let body = h2.session.receivedBody(stream)
            if body.count > 0 && (dropping || (ex.canTakeBody && ex.wantsBody)) {
                if !dropping { ex.requestBody(body) }
                ex.requestBodyBytes += body.count
                h2.session.consume(stream, body.count)
                progress = true
                if ex.requestBodyBytes > limits.maxBodySize {
                    failRequest(ex, .client(413, "body over max_body_size"))
                    return true
                }
            }
            if ex.clientEnded && h2.session.receivedBody(stream).isEmpty && (dropping || ex.canTakeBody) {
                if !dropping { ex.requestEnd() }
                ex.state.requestEnded = true
                progress = true
            }
        }
        if ex.flushUpstream() { progress = true }
        if ex.isOpen, ex.receiveResponse() { progress = true }
        guard ex.isOpen else { return true }
        // The backend's part is over: its connection serves other streams while this one's
        // response still drains to the client.
        if ex.state.responseEnded && ex.state.requestEnded && ex.hasUpstream { releaseUpstream(ex) }
        if finishStream(ex, h2, closed: false) { progress = true }
        return progress
    }

    /// The stream's response is all with nghttp2 (or the stream is closed) and its request is
    /// over: log, recycle.
    private func finishStream(_ ex: Exchange, _ h2: HTTP2Downstream, closed: Bool) -> Bool {
        let stream = Int32(ex.stream)
        // An answer of the gateway's own before the client finished its request: the rest of the
        // body is read and dropped (as HTTP/1.1 does; bounded by max_body_size and idle_timeout),
        // since clients such as curl take a reset of a stream they still send on for a failure.
        // Only an answer that stops reading the request (413 and the like, SPEC §12) resets it,
        // without error (RFC 9113 §8.1) — after the answer went out: nghttp2 drops a stream's
        // queued HEADERS once it is reset.
        guard ex.state.responseEnded else { return false }
        guard ex.state.requestEnded || (ex.state.local && (ex.stopsReading || closed)) else {
            if ex.state.local && h2.session.outgoingBuffered(stream) == 0 { record(ex) }   // answered: logged now
            return false
        }
        let resets = ex.stopsReading && !closed
        if resets && ex.answerFlush < 0 { ex.answerFlush = h2.flushes }
        if !closed && (h2.session.outgoingBuffered(stream) > 0 || (resets && ex.answerFlush >= h2.flushes)) {
            ex.waitingOnClient = true   // finished once nghttp2 took the rest: a turn after the flush
            return false
        }
        record(ex)
        if resets { h2.session.reset(stream, code: HTTP2ErrorCode.noError) }
        releaseUpstream(ex)
        closeExchange(ex)
        if exchanges.isEmpty && !h2.noticed { setDeadline(limits.idleTimeoutMs) }
        return true
    }

    /// The client reset the stream, or nghttp2 closed it, before the exchange was over: whatever
    /// it had is let go.
    private func streamGone(_ ex: Exchange) {
        if ex.state.status != 0 { record(ex) }
        closeExchange(ex)
        if exchanges.isEmpty && !(withHTTP2 { $0.noticed } ?? false) { setDeadline(limits.idleTimeoutMs) }
    }

    /// nghttp2's frames into the connection's output (no syscall); the socket write waits for
    /// the end of the event batch, so the streams answered in one batch share writes and records.
    private func flushHTTP2(_ h2: HTTP2Downstream) -> Bool {
        var progress = false
        if io.output.readableCount < Self.highWater {
            let before = io.output.readableCount
            do { try h2.session.write(into: &io.output, limit: Self.highWater) } catch {
                http2Failed(h2, error)
                return true
            }
            progress = io.output.readableCount > before
            if progress { h2.flushes += 1 }
        }
        if !io.output.isEmpty && !batchQueued { loop.afterBatch(self) }
        return progress
    }

    /// The idle sweep found the connection idle and its session gave its memory back: what the
    /// connection kept for its next streams goes too (the exchange table's spill, the round
    /// queues' storage, the stream timer: ~190 B of an idle connection's). All of it comes back
    /// with the next stream.
    func releaseIdleHTTP2Storage() {
        exchanges.releaseStorage()
        if turnQueue.isEmpty { turnQueue = [] }
        if waitingQueue.isEmpty { waitingQueue = [] }
        if turns.isEmpty { turns = [] }
        dropStreamTimer()   // no exchange is open: no deadline to keep
    }

    func queueTurn(_ ex: Exchange) { if isHTTP2 { turnQueue.append(ex) } }
    func queueWaiting(_ ex: Exchange) { if isHTTP2 { waitingQueue.append(ex) } }

    /// The streams that waited for the client to take their frames get a turn.
    private func wakeWaiting() {
        swap(&turns, &waitingQueue)
        let me = Unmanaged.passUnretained(self).toOpaque()
        do {
            let list = turns
            list.forEachUnretained { ex in
                guard ex.waitingOnClient && ex.connectionRef?.toOpaque() == me else { return }
                ex.waitingOnClient = false   // set again if it still has to wait
                ex.turn = true
            }
        }
        turns.removeAll(keepingCapacity: true)
    }

    /// The streams whose backends had news in this batch move (one round for all of them), then
    /// the batch's writes to the client; what they made room for moves on.
    func endOfHTTP2Batch() {
        guard phase == .serving, isHTTP2 else { return }
        defer { io.output.releaseIfEmpty() }   // an idle connection holds no buffer block
        if !turnQueue.isEmpty { drive() }
        if phase == .serving && flushClient() && phase == .serving {
            wakeWaiting()
            drive()
        }
    }

    /// A connection error (abuse, a protocol error): nghttp2 has queued its GOAWAY; log, count,
    /// send it, and close. Other connections are not touched.
    private func http2Failed(_ h2: HTTP2Downstream, _ error: HTTP2Error) {
        logHTTP2Error(error.reason)
        for ex in exchanges.all {
            if ex.state.status != 0 { record(ex) }
            closeExchange(ex)
        }
        try? h2.session.write(into: &io.output)
        beginClose()
    }

    /// SIGTERM, `max_requests_per_connection`, a reload that drains: the two-step GOAWAY of
    /// RFC 9113 §6.8 — a notice now (last stream 2^31-1, so requests in flight still land), the
    /// final GOAWAY with the last stream id a second later; open streams finish.
    func goAway(_ h2: HTTP2Downstream) {
        guard !h2.noticed else { return }
        h2.noticed = true
        try? h2.session.shutdownNotice()
        setDeadline(1000)
        drive()
    }

    /// The connection's timer: the second step of a GOAWAY, or `idle_timeout` with no open stream.
    func http2DeadlineExpired(_ h2: HTTP2Downstream) {
        if h2.noticed && !h2.goingAway {
            h2.goingAway = true
            try? h2.session.goaway()
        } else if exchanges.isEmpty {
            h2.goingAway = true
            try? h2.session.goaway()
            _ = flushHTTP2(h2)
            beginClose()
        }
        drive()
    }
}
