import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// After a 101: the connection becomes a two-way byte tunnel with backpressure.
extension ClientConnection {
    // MARK: - Upgraded connections

    /// After a 101: client bytes go to the backend and backend bytes to the client, unchanged,
    /// each direction pausing at the high-water mark, until either side closes.
    func tunnel() {
        guard let b = backend, b.phase == .ready else { close(); return }
        var progress = true, open = true
        while progress && open {
            progress = false
            open = b.tls.flush(&inBuf, progress: &progress)
                && tls.flush(&b.inBuf, progress: &progress)
                && tls.fill(&inBuf, upTo: Self.highWater, progress: &progress)
                && b.tls.fill(&b.inBuf, upTo: Self.highWater, progress: &progress)
            if progress { setDeadline(limits.idleTimeoutMs) }
        }
        if !open {
            // One side ended: hand on what is already here, then end the other.
            var ignored = false
            _ = b.tls.flush(&inBuf, progress: &ignored)
            _ = tls.flush(&b.inBuf, progress: &ignored)
            close()
        }
    }
}
