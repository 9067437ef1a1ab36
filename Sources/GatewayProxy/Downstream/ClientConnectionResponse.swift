import Glibc
import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// Moving an open exchange along from the connection's side: its backend's handshake, the
/// request both ways, writing to the client, and what follows a finished exchange.
extension ClientConnection {
    func forward(_ ex: Exchange) {
        var progress = true
        var rounds = 0
        while progress && phase == .serving && ex.isOpen && rounds < 256 {
            progress = false
            rounds += 1
            guard ex.advanceUpstream() else { return }
            guard ex.isOpen else { return }
            if sendRequest(ex) { progress = true }
            if ex.receiveResponse() { progress = true }
            if flushClient() { progress = true }
            if finishIfDone(ex) { return }
        }
        // Stopped by the round limit (a fair share for other connections) while both sides could
        // still go on: no epoll event will come for that, so ask the loop for another turn.
        if progress && phase == .serving { anotherTurn = true }
    }

    func flushClient() -> Bool {
        guard !io.output.isEmpty else { return false }
        var progress = false
        guard io.flush(progress: &progress) else { close(); return true }
        if progress, phase == .serving, !isHTTP2 { _ = withExchange { $0.setDeadline(max(limits.idleTimeoutMs, 1)) } }
        return progress
    }

    /// A finished exchange's backend connection goes back to the pool, or is dropped when the
    /// exchange did not end cleanly.
    func releaseUpstream(_ ex: Exchange) {
        if ex.backendStream.conn != nil {
            let cancel = !(ex.backendStream.ended && ex.state.requestEnded)
            func release(_ c: H2Upstream) {
                backends.recordSuccess(of: c.link)
                c.detach(ex, cancel: cancel)
            }
            // An open connection at +0 (`withBackendConnection`); a closed one may have no holder
            // but this exchange, which detaching lets go, so it is held for the call.
            if ex.withBackendConnection({ c, _ in release(c) }) == nil, let c = ex.backendStream.conn { release(c) }
            return
        }
        guard let c = ex.upstream.take() else { return }   // the exchange's reference moves here
        backends.recordSuccess(of: c)
        if ex.state.keepsUpstream(upstreamReady: c.phase == .ready, draining: worker.draining) {
            backends.release(consume c)
        } else {
            c.owner = nil
            backends.discard(c)
        }
    }

    // MARK: - Response parts, in the client's protocol

    /// Whether the exchange's stream can take more response bytes (back-pressure on its backend).
    func canTakeResponse(_ ex: Exchange) -> Bool {
        withHTTP2 { $0.canTakeResponse(ex.stream) } ?? (io.output.readableCount < Self.highWater)
    }

    func writeInterim(_ ex: Exchange, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead) {
        if withHTTP2({ $0.writeInterim(ex.stream, b, head, into: &io.output) }) == nil { downstream.writeInterim(ex.stream, b, head, into: &io.output) }
    }

    func writeHead(_ ex: Exchange, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, _ edits: ResponseEdits, ends: Bool = false) {
        if withHTTP2({ _ = $0.writeHead(ex.stream, b, head, edits, endStream: ends, close: false, into: &io.output) }) != nil { return }
        let closing = closeAfterResponse || !ex.state.clientKeepAlive
        if downstream.writeHead(ex.stream, b, head, edits, endStream: ends, close: closing, into: &io.output) {
            closeAfterResponse = true   // the body ends with the connection
        }
    }

    func writeBody(_ ex: Exchange, _ bytes: UnsafeRawBufferPointer) {
        if withHTTP2({ $0.writeBody(ex.stream, bytes, into: &io.output) }) != nil { return }
        // Several KB waiting and no room for this part: write them out first, or the append grows
        // the buffer and copies them (a 16 KiB response: 16 KiB copied each). A record holds at
        // most 16 KiB, so this makes no more records or writes than the later flush would. A
        // failure here shows again at that flush, which closes the connection.
        if io.output.readableCount >= Self.flushBeforeGrowth && io.output.writableCount < bytes.count + 16 {
            var progress = false
            _ = io.flush(progress: &progress)
        }
        downstream.writeBody(ex.stream, bytes, into: &io.output)
    }

    /// The end of the body with the backend's trailers: HTTP/2 sends them; HTTP/1.1 only as
    /// chunked trailers to a client that said `TE: trailers`.
    func writeTrailers(_ ex: Exchange, _ fields: HTTP2Fields) {
        if withHTTP2({ $0.writeTrailers(ex.stream, fields, accepted: true, into: &io.output) }) == nil {
            downstream.writeTrailers(ex.stream, fields, accepted: ex.clientTE, into: &io.output)
        }
    }

    func writeEnd(_ ex: Exchange) {
        if withHTTP2({ $0.writeEnd(ex.stream, into: &io.output) }) == nil { downstream.writeEnd(ex.stream, into: &io.output) }
    }

    /// Response fully written and request fully read: log, recycle, and get ready for the next request.
    func finishIfDone(_ ex: Exchange) -> Bool {
        guard phase == .serving,
              let next = ex.state.next(flushed: io.output.isEmpty, closeAfterResponse: closeAfterResponse,
                                       draining: worker.draining, hasUpstream: ex.upstream != nil) else { return false }
        record(ex)
        if next == .tunnel {
            tunnelled = ex.upstream
            tunnelled?.owner = self
            ex.upstream = nil
        } else {
            releaseUpstream(ex)
        }
        closeExchange(ex)
        switch next {
        case .tunnel:
            phase = .tunnel
            setDeadline(limits.idleTimeoutMs)
        case .close:
            beginClose()
        case .nextRequest:
            headBytesSeen = !io.input.isEmpty
            downstream.reset()
            io.input.releaseIfEmpty()
            io.output.releaseIfEmpty()
            setDeadline(headBytesSeen ? limits.headerTimeoutMs : limits.idleTimeoutMs)
        }
        return true
    }
}
