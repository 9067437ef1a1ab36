import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// Moving an open exchange along from the connection's side: its backend's handshake, the
/// request both ways, writing to the client, and what follows a finished exchange.
extension ClientConnection {
    func forward(_ ex: Exchange) {
        var progress = true
        var rounds = 0
        while progress && phase == .serving && exchange === ex && rounds < 256 {
            progress = false
            rounds += 1
            guard ex.advanceUpstream() else { return }
            guard exchange === ex else { return }
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
        if progress, phase == .serving, let ex = exchange { ex.setDeadline(max(limits.idleTimeoutMs, 1)) }
        return progress
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
        } else if let c = ex.upstream {
            ex.upstream = nil
            worker.pool.recordSuccess(c.backend, server: c.serverIndex)
            if ex.state.keepsUpstream(upstreamReady: c.phase == .ready, draining: worker.draining) {
                worker.pool.release(c)
            } else {
                c.owner = nil
                worker.pool.discard(c)
            }
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
