import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// The response side: reading the backend's response, re-framing (and gzipping) it toward the
/// client, and finishing the exchange.
extension ClientConnection {
    /// Reads the backend's response while the client keeps up, turning it into the client's framing.
    func receiveResponse() -> Bool {
        guard let b = backend, b.phase == .ready, let ex = exchange, !ex.responseDone, ex.headSent else { return false }
        var progress = false
        while outBuf.readableCount < Self.highWater {
            // Hand on everything already buffered (a head and its body often share one read)
            // before reading again.
            while !b.inBuf.isEmpty && outBuf.readableCount < Self.highWater {
                let before = b.inBuf.readableCount
                let wasDone = exchange?.responseDone ?? true
                processResponseBytes(b)
                guard backend === b, phase == .forwarding else { return true }
                if exchange?.responseDone ?? true { return true }
                guard b.inBuf.readableCount != before || exchange?.responseDone != wasDone else { break } // needs more bytes
                progress = true
            }
            let space = b.inBuf.writableSpace(minimum: 16 * 1024)
            switch b.tls.read(into: space) {
            case .done(let n):
                b.inBuf.didWrite(n)
                progress = true
                setDeadline(b.backend.config.responseTimeoutMs)
            case .wantRead, .wantWrite: return progress
            case .closed, .failed(_):
                backendEnded(b)
                return true
            }
        }
        return progress
    }

    /// The backend closed (or broke) its connection.
    func backendEnded(_ b: BackendConnection) {
        guard let ex = exchange else { return }
        if case .untilClose = ex.responseBody {
            ex.responseBody = .done
            endResponseBody(ex)
            ex.backendKeepAlive = false
            return
        }
        if case .awaitingHead = ex.responseBody {
            let stale = b.reused && b.inBuf.isEmpty && !ex.bodyForwarded
            backendFailed(ProxyError(.badGateway, "backend \(b.server.label) closed the connection before responding", retrySafe: stale, metric: .reset))
            return
        }
        worker.logs.error.log(.error, "backend_error", "backend \(b.server.label) closed the connection mid-response",
                              [("request_id", ex.requestID)])
        counters.countBackendFailure(backend: b.backend.index, server: b.serverIndex, .reset)
        abort()
    }

    func processResponseBytes(_ b: BackendConnection) {
        guard let ex = exchange else { return }
        let input = b.inBuf.readable
        switch ex.responseBody {
        case .awaitingHead:
            let head: HTTPResponseHead?
            do { head = try ex.responseParser.parse(input, requestWasHEAD: ex.isHEAD) } catch {
                b.inBuf.consume(input.count)
                backendFailed(ProxyError(.badGateway, "backend \(b.server.label) sent an invalid response: \(error.reason)", metric: .protocol))
                return
            }
            guard let head else { return }
            if head.status == 101 && ex.upgradeRequested {
                // Switching protocols: the head goes to the client, then bytes flow both ways as they are.
                HeadWriter.response(input, head: head, chunked: false, close: false, into: &outBuf)
                b.inBuf.consume(head.headLength)
                ex.status = 101
                ex.upstreamMs = Int(now - ex.upstreamStartedAt)
                ex.responseStarted = true
                ex.responseBody = .done
                ex.requestBodyDone = true
                return
            }
            if head.status >= 100 && head.status < 200 {
                // Interim responses (100 Continue, 103) pass through to HTTP/1.1 clients.
                if head.status != 101 && ex.clientVersionMinor >= 1 {
                    HeadWriter.response(input, head: head, chunked: false, close: false, into: &outBuf)
                }
                b.inBuf.consume(head.headLength)
                ex.responseParser.reset()
                return
            }
            ex.status = head.status
            ex.backendKeepAlive = head.keepAlive
            ex.upstreamMs = Int(now - ex.upstreamStartedAt)
            switch head.framing {
            case .none: ex.responseBody = .done; ex.clientFraming = .asIs
            case .contentLength(let n): ex.responseBody = n == 0 ? .done : .length(n); ex.clientFraming = .asIs
            case .chunked: ex.responseBody = .chunked(ChunkedDecoder())
                ex.clientFraming = ex.clientVersionMinor >= 1 ? .chunked : .close
            case .untilClose: ex.responseBody = .untilClose
                ex.clientFraming = ex.clientVersionMinor >= 1 ? .chunked : .close
            }
            let (gzip, vary) = compressionFor(head, input, ex)
            if gzip {
                ex.gzip = GzipStream()
                ex.clientFraming = ex.clientVersionMinor >= 1 ? .chunked : .close
            }
            if ex.clientFraming == .close { closeAfterResponse = true }
            let closing = closeAfterResponse || !ex.clientKeepAlive
            HeadWriter.response(input, head: head, chunked: ex.clientFraming == .chunked, close: closing,
                                gzip: ex.gzip != nil, vary: vary, into: &outBuf)
            ex.responseStarted = true
            ex.outgoingHead = []
            b.inBuf.consume(head.headLength)
        case .length(let remaining):
            let n = min(remaining, input.count)
            appendBody(UnsafeRawBufferPointer(rebasing: input[0..<n]), framing: ex.clientFraming)
            ex.bytesOut += n
            b.inBuf.consume(n)
            if remaining == n { ex.responseBody = .done; endResponseBody(ex) } else { ex.responseBody = .length(remaining - n) }
        case .chunked(var decoder):
            do {
                let framing = ex.clientFraming
                var out = 0
                let r = try decoder.decode(input) { range in
                    appendBody(UnsafeRawBufferPointer(rebasing: input[range]), framing: framing)
                    out += range.count
                }
                ex.bytesOut += out
                b.inBuf.consume(r.consumed)
                if r.done {
                    ex.responseBody = .done
                    endResponseBody(ex)
                } else {
                    ex.responseBody = .chunked(decoder)
                }
            } catch {
                worker.logs.error.log(.error, "backend_error", "backend \(b.server.label) sent a bad chunk: \(error.reason)")
                counters.countBackendFailure(backend: b.backend.index, server: b.serverIndex, .protocol)
                abort(); return
            }
        case .untilClose:
            appendBody(input, framing: ex.clientFraming)
            ex.bytesOut += input.count
            b.inBuf.consume(input.count)
        case .done:
            break
        }
    }

    func appendBody(_ bytes: UnsafeRawBufferPointer, framing: Exchange.ClientFraming) {
        guard bytes.count > 0 else { return }
        if let gzip = exchange?.gzip {
            gzip.compress(bytes) { appendFramed($0, framing: framing) }
        } else {
            appendFramed(bytes, framing: framing)
        }
    }

    /// The last bytes of a response body: the gzip trailer, then the last chunk.
    func endResponseBody(_ ex: Exchange) {
        if let gzip = ex.gzip {
            gzip.finish { appendFramed($0, framing: ex.clientFraming) }
            ex.gzip = nil
        }
        if ex.clientFraming == .chunked { outBuf.append("0\r\n\r\n") }
    }

    /// SPEC §5 gzip: (compress this response, add Vary).
    func compressionFor(_ head: HTTPResponseHead, _ b: UnsafeRawBufferPointer, _ ex: Exchange) -> (Bool, Bool) {
        guard let c = ex.compression, !ex.isHEAD, head.status == 200 else { return (false, false) }
        var type = "", encoded = false
        for h in head.headers {
            if asciiEqualsIgnoringCase(b, h.name, "content-type") { type = String(decoding: b[h.value], as: UTF8.self) }
            if asciiEqualsIgnoringCase(b, h.name, "content-encoding") { encoded = true }
        }
        guard !encoded, CompressionDecision.typeListed(type, in: c.types) else { return (false, false) }
        switch head.framing {
        case .none: return (false, true)
        case .contentLength(let n) where n < max(c.minLength, 1): return (false, true)
        default: return (ex.acceptsGzip, true)
        }
    }

    func appendFramed(_ bytes: UnsafeRawBufferPointer, framing: Exchange.ClientFraming) {
        guard bytes.count > 0 else { return }
        if framing == .chunked {
            outBuf.append(hex: bytes.count)
            outBuf.append("\r\n")
            outBuf.append(bytes)
            outBuf.append("\r\n")
        } else {
            outBuf.append(bytes)
        }
    }

    func flushClient() -> Bool {
        guard !outBuf.isEmpty else { return false }
        var progress = false
        guard tls.flush(&outBuf, progress: &progress) else { close(); return true }
        if progress && phase == .forwarding { setDeadline(max(limits.idleTimeoutMs, 1)) }
        return progress
    }

    /// Response fully written and request fully read: log, recycle, and get ready for the next request.
    func finishIfDone() -> Bool {
        guard let ex = exchange, ex.responseDone, ex.requestBodyDone || ex.local, outBuf.isEmpty, phase == .forwarding else { return false }
        record(ex)
        if ex.status == 101, ex.upgradeRequested, backend != nil {
            exchange = nil
            phase = .tunnel
            setDeadline(limits.idleTimeoutMs)
            return true
        }
        if let b = backend {
            backend = nil
            worker.pool.recordSuccess(b.backend, server: b.serverIndex)
            if ex.requestBodyDone && ex.backendKeepAlive && b.phase == .ready && !worker.draining {
                worker.pool.release(b)
            } else {
                b.owner = nil
                worker.pool.discard(b)
            }
        }
        exchange = nil
        if closeAfterResponse || !ex.clientKeepAlive || !ex.requestBodyDone || worker.draining {
            beginClose()
            return true
        }
        phase = .awaitingHead
        headBytesSeen = !inBuf.isEmpty
        parser.reset()
        inBuf.releaseIfEmpty()
        outBuf.releaseIfEmpty()
        setDeadline(headBytesSeen ? limits.headerTimeoutMs : limits.idleTimeoutMs)
        return true
    }
}
