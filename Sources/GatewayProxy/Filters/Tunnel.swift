import GatewayTLS

/// After a 101: the connection is a two-way byte tunnel. Client bytes go to the backend and
/// backend bytes to the client, unchanged, each direction pausing at the high-water mark,
/// until either side closes; then what is already here is handed on and both end.
enum Tunnel {
    enum Outcome { case idle, moved, ended }

    /// Moves bytes both ways until nothing moves. `.ended`: one side closed or failed.
    static func pump(_ client: inout Transport, _ backend: inout Transport, highWater: Int) -> Outcome {
        var moved = false, progress = true, open = true
        while progress && open {
            progress = false
            open = backend.send(&client.input, progress: &progress)
                && client.send(&backend.input, progress: &progress)
                && client.fill(upTo: highWater, progress: &progress)
                && backend.fill(upTo: highWater, progress: &progress)
            moved = moved || progress
        }
        guard open else {
            var ignored = false
            _ = backend.send(&client.input, progress: &ignored)
            _ = client.send(&backend.input, progress: &ignored)
            return .ended
        }
        return moved ? .moved : .idle
    }
}

extension ClientConnection {
    func tunnel() {
        guard let b = tunnelled, b.phase == .ready else { close(); return }
        switch Tunnel.pump(&io, &b.io, highWater: Self.highWater) {
        case .idle: break
        case .moved: setDeadline(limits.idleTimeoutMs)
        case .ended: close()
        }
    }
}
