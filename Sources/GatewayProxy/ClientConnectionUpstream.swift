import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// The backend side of an exchange: choosing a server, retrying (RetryPolicy), failing with
/// 502/503/504, and streaming the request head and body to the backend.
extension ClientConnection {
    // MARK: - Backend selection

    func connectBackend(excluding: Int?) {
        guard let ex = exchange, let b = ex.backend else { return }
        guard let server = worker.pool.pickServer(b, excluding: excluding) else {
            backendFailed(ProxyError(.unavailable, "backend \(b.config.name) has no server available", metric: nil)); return
        }
        ex.attempts += 1
        ex.serverIndex = server
        ex.upstreamStartedAt = now
        do {
            let c = try worker.pool.connection(b, server: server)
            c.owner = self
            backend = c
            setDeadline(c.phase == .ready ? b.config.responseTimeoutMs : b.config.connectTimeoutMs)
        } catch {
            backendFailed(error)
        }
    }

    /// Retries once on another server when nothing of the request reached the failed one;
    /// otherwise answers 502/503/504 and logs why.
    func backendFailed(_ failure: ProxyError) {
        guard let ex = exchange else { return }
        let label = backend?.server.label ?? ""
        let attempt = RetryPolicy.Attempt(failure: failure, pooled: backend?.reused == true, failedServer: ex.serverIndex,
                                          serverCount: ex.backend?.servers.count ?? 0, bodyForwarded: ex.bodyForwarded,
                                          responseStarted: ex.responseStarted, attempts: ex.attempts)
        if RetryPolicy.countsAgainstServer(attempt), let b = ex.backend, let s = ex.serverIndex {
            worker.pool.recordFailure(b, server: s)
            if let m = failure.metric { counters.countBackendFailure(backend: b.index, server: s, m) }
        }
        if let c = backend {
            c.owner = nil
            worker.pool.discard(c)
            backend = nil
        }
        if let b = ex.backend,
           case .retry(let other) = RetryPolicy.decide(attempt, usable: { worker.pool.hasUsableServer(b, excluding: $0) }) {
            ex.headSent = false
            worker.logs.error.log(.warn, "backend_retry", failure.reason, [("backend", .string(b.config.name)), ("server", .string(label)), ("request_id", .string(ex.requestID.text))])
            connectBackend(excluding: other)
            return
        }
        worker.logs.error.log(.error, "backend_error", failure.reason,
                              [("backend", .string(ex.backend?.config.name ?? "")), ("server", .string(label)), ("request_id", .string(ex.requestID.text))])
        if ex.responseStarted { abort(); return }
        respondLocally(failure, close: false)
    }

    // MARK: - Forwarding

    func forward() {
        guard exchange != nil else { phase = .awaitingHead; return }
        var progress = true
        var rounds = 0
        while progress && phase == .forwarding && rounds < 256 {
            progress = false
            rounds += 1
            if let b = backend, b.phase != .ready {
                switch b.advanceHandshake() {
                case .inProgress:
                    return
                case .failed(let failure):
                    backendFailed(failure); progress = true; continue
                case .ready:
                    setDeadline(b.backend.config.responseTimeoutMs)
                }
            }
            if sendRequest() { progress = true }
            if receiveResponse() { progress = true }
            if flushClient() { progress = true }
            if finishIfDone() { return }
        }
        // Stopped by the round limit (a fair share for other connections) while both sides could
        // still go on: no epoll event will come for that, so ask the loop for another turn.
        if progress && phase == .forwarding { anotherTurn = true }
    }

    /// Head, then body bytes from `io.input` (decoded and re-framed), then reading more from the client.
    func sendRequest() -> Bool {
        guard let ex = exchange else { return false }
        var progress = false
        if let b = backend, b.phase == .ready, !ex.headSent {
            b.io.output.append(ex.outgoingHead.readable)
            b.codec.expectResponse(toHEAD: ex.isHEAD, upgradeRequested: ex.upgradeRequested)
            ex.headSent = true
            progress = true
        }
        while true {
            if consumeRequestBody() { progress = true }
            if flushBackend() { progress = true }
            guard let ex = exchange, !ex.requestEnded, phase == .forwarding else { break }
            if let b = backend, b.io.output.readableCount >= Self.highWater { break }
            if backend != nil && backend?.phase != .ready { break }
            guard io.input.isEmpty else { break }
            guard readClient() else { break }
            progress = true
        }
        return progress
    }

    /// Moves request body parts from `io.input` to the backend (re-chunked when the client
    /// chunked it), or drops them for a local response.
    func consumeRequestBody() -> Bool {
        guard let ex = exchange, !ex.requestEnded, !io.input.isEmpty else { return false }
        let sink = (ex.local || backend == nil) ? nil : backend
        if let sink, sink.phase != .ready || !ex.headSent { return false }
        var progress = false
        while !ex.requestEnded {
            let step: (part: HTTP1ServerCodec.Part?, consumed: Int)
            do { step = try codec.next(io.input.readable) } catch {
                io.input.consume(io.input.readableCount)
                failRequest(.client(error))
                return true
            }
            switch step.part {
            case .body(let range)?:
                let run = UnsafeRawBufferPointer(rebasing: io.input.readable[range])
                if let sink {
                    if ex.requestChunked { sink.io.output.append(hex: run.count); sink.io.output.append("\r\n") }
                    sink.io.output.append(run)
                    if ex.requestChunked { sink.io.output.append("\r\n") }
                    ex.bodyForwarded = true
                }
                ex.requestBodyBytes += run.count
            case .end?:
                if ex.requestChunked { sink?.io.output.append("0\r\n\r\n") }
                ex.requestEnded = true
            case .head?, nil:
                break
            }
            io.input.consume(step.consumed)
            if step.consumed > 0 { progress = true }
            if step.part == nil { break }
        }
        if ex.requestBodyBytes > limits.maxBodySize {
            failRequest(.client(413, "body over max_body_size"))
        }
        return progress
    }

    /// A request that went bad mid-body: the backend connection is useless, the client's framing is lost.
    func failRequest(_ failure: ProxyError) {
        if let c = backend { c.owner = nil; worker.pool.discard(c); backend = nil }
        if exchange?.responseStarted == true { abort(); return }
        respondLocally(failure, close: true)
    }

    func flushBackend() -> Bool {
        guard let b = backend, b.phase == .ready, !b.io.output.isEmpty else { return false }
        var progress = false
        guard b.io.flush(progress: &progress) else {
            backendFailed(ProxyError(.badGateway, "backend \(b.server.label) failed while sending the request",
                                       retrySafe: b.reused && !(exchange?.bodyForwarded ?? true), metric: .reset))
            return true
        }
        b.io.output.releaseIfEmpty()
        return progress
    }
}
