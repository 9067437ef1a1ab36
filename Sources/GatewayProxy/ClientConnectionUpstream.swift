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
            ex.responseParser.reset()
            worker.logs.error.log(.warn, "backend_retry", failure.reason, [("backend", b.config.name), ("server", label), ("request_id", ex.requestID)])
            connectBackend(excluding: other)
            return
        }
        worker.logs.error.log(.error, "backend_error", failure.reason,
                              [("backend", ex.backend?.config.name ?? ""), ("server", label), ("request_id", ex.requestID)])
        if ex.responseStarted { abort(); return }
        respondLocally(status: failure.status, reason: failure.reason, close: false)
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

    /// Head, then body bytes from `inBuf` (decoded and re-framed), then reading more from the client.
    func sendRequest() -> Bool {
        guard let ex = exchange else { return false }
        var progress = false
        if let b = backend, b.phase == .ready, !ex.headSent {
            ex.outgoingHead.withUnsafeBytes { b.outBuf.append($0) }
            ex.headSent = true
            progress = true
        }
        while true {
            if consumeRequestBody() { progress = true }
            if flushBackend() { progress = true }
            guard let ex = exchange, !ex.requestBodyDone, phase == .forwarding else { break }
            if let b = backend, b.outBuf.readableCount >= Self.highWater { break }
            if backend != nil && backend?.phase != .ready { break }
            guard inBuf.isEmpty else { break }
            guard readClient() else { break }
            progress = true
        }
        return progress
    }

    /// Moves request body bytes from `inBuf` to the backend (or drops them for a local response).
    func consumeRequestBody() -> Bool {
        guard let ex = exchange, !ex.requestBodyDone, !inBuf.isEmpty else { return false }
        let sink = (ex.local || backend == nil) ? nil : backend
        if let sink, sink.phase != .ready || !ex.headSent { return false }
        let input = inBuf.readable
        var consumed = 0
        switch ex.requestBody {
        case .none:
            ex.requestBodyDone = true
        case .length(let remaining):
            let n = min(remaining, input.count)
            sink?.outBuf.append(UnsafeRawBufferPointer(rebasing: input[0..<n]))
            consumed = n
            ex.requestBody = .length(remaining - n)
            ex.requestBodyBytes += n
            if remaining == n { ex.requestBodyDone = true }
        case .chunked(var decoder):
            do {
                var payload = 0
                let r = try decoder.decode(input) { range in
                    payload += range.count
                    guard let sink else { return }
                    sink.outBuf.append(hex: range.count)
                    sink.outBuf.append("\r\n")
                    sink.outBuf.append(UnsafeRawBufferPointer(rebasing: input[range]))
                    sink.outBuf.append("\r\n")
                }
                consumed = r.consumed
                ex.requestBodyBytes += payload
                if r.done {
                    sink?.outBuf.append("0\r\n\r\n")
                    ex.requestBodyDone = true
                }
                ex.requestBody = .chunked(decoder)
            } catch {
                inBuf.consume(input.count)
                failRequest(status: error.status, reason: error.reason)
                return true
            }
        }
        if sink != nil && consumed > 0 { ex.bodyForwarded = true }
        inBuf.consume(consumed)
        if ex.requestBodyBytes > limits.maxBodySize {
            failRequest(status: 413, reason: "body over max_body_size")
        }
        return consumed > 0
    }

    /// A request that went bad mid-body: the backend connection is useless, the client's framing is lost.
    func failRequest(status: Int, reason: String) {
        if let c = backend { c.owner = nil; worker.pool.discard(c); backend = nil }
        if exchange?.responseStarted == true { abort(); return }
        respondLocally(status: status, reason: reason, close: true)
    }

    func flushBackend() -> Bool {
        guard let b = backend, b.phase == .ready, !b.outBuf.isEmpty else { return false }
        var progress = false
        guard b.tls.flush(&b.outBuf, progress: &progress) else {
            backendFailed(ProxyError(.badGateway, "backend \(b.server.label) failed while sending the request",
                                       retrySafe: b.reused && !(exchange?.bodyForwarded ?? true), metric: .reset))
            return true
        }
        b.outBuf.releaseIfEmpty()
        return progress
    }
}
