import GatewayConfig
import GatewayTLS

/// SPEC §7.2: a reload reaches open connections. Runs on the worker's own loop, in the task that
/// hands it the new snapshot; nothing here is on the per-request path.
extension Worker {
    /// Every open connection whose host's fingerprint (policy fields and file contents) is not
    /// the same in `next`, or whose host is gone, finishes the exchange in flight and closes; one
    /// `reload_drained` line per host counts them. A connection still in its handshake is judged
    /// when the handshake ends (`ClientConnection.handshakeEndedOnStaleSnapshot`).
    func drainChangedHosts(reloadingTo next: RuntimeSnapshot) {
        // Connections share a handful of snapshots: judge each snapshot's hosts once.
        var verdicts: [ObjectIdentifier: [Bool]] = [:]
        var drained: [String: Int] = [:]
        for c in Array(live.values) where c.snapshot !== next {
            guard let host = c.tls.host else { continue }
            let key = ObjectIdentifier(c.snapshot)
            let drain: [Bool]
            if let v = verdicts[key] { drain = v } else {
                drain = c.snapshot.hostsToDrain(reloadingTo: next)
                verdicts[key] = drain
            }
            if drain[host.index] && c.finishForReload() { drained[host.name, default: 0] += 1 }
        }
        for (name, n) in drained.sorted(by: { $0.key < $1.key }) {
            logs.error.log(.info, "reload_drained", "the host's policy changed: its connections finish their exchange and close",
                           [("host", .string(name)), ("connections", .int(n)), ("worker", .int(id))])
        }
    }
}

extension ClientConnection {
    /// This connection's host policy changed in a reload. True when it will close because of it.
    /// HTTP/1.1: a request in flight is answered with `Connection: close` (`closeAfterResponse`
    /// is read when the response head is written), then the connection closes; an idle keep-alive
    /// connection sends close_notify and closes now. A tunnel runs on; a handshake is judged when
    /// it ends.
    /// HTTP/2: GOAWAY (the two steps of RFC 9113 §6.8); its open streams finish.
    func finishForReload() -> Bool {
        switch phase {
        case .serving:
            if let h2 = http2 {
                goAway(h2)
            } else if exchanges.isEmpty && !headBytesSeen {
                beginClose()
                drive()
            } else {
                closeAfterResponse = true
            }
            return true
        case .handshaking, .tunnel, .draining, .closed:
            return false
        }
    }

    /// At the end of a handshake that started before a reload: true when the host it chose
    /// changed or is gone in the worker's current snapshot (then the connection closes before its
    /// first request: the policy it was admitted under is no longer in force). One pointer
    /// comparison for every other handshake.
    var handshakeEndedOnStaleSnapshot: Bool {
        let current = worker.snapshot
        guard current !== snapshot, let host = tls.host else { return false }
        return ReloadJudgement.mustDrain(host.name, snapshot.hostFingerprints[host.index], new: current.fingerprintsByName)
    }
}
