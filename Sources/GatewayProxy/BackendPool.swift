import GatewaySystem
import GatewayTLS
import COpenSSL

/// Per-worker backend state: idle keep-alive connections per server (reused across client
/// connections), the round-robin cursor, and the last TLS session per server for resumption.
/// Owned by one event loop thread: no locks.
final class BackendPool {
    private struct Key: Hashable { let backend: ObjectIdentifier; let server: Int }
    private var idle: [Key: [BackendConnection]] = [:]
    private var sessions: [Key: OpaquePointer] = [:]
    private var cursor: [ObjectIdentifier: Int] = [:]
    unowned let worker: Worker

    init(worker: Worker) { self.worker = worker }

    deinit { for s in sessions.values { SSL_SESSION_free(s) } }

    /// The next server by weighted round robin, skipping `excluding`.
    func pickServer(_ backend: BackendRuntime, excluding: Int? = nil) -> Int? {
        let id = ObjectIdentifier(backend)
        let sched = backend.schedule
        guard !sched.isEmpty else { return nil }
        var c = cursor[id, default: 0]
        for _ in 0..<sched.count {
            let s = sched[c % sched.count]
            c += 1
            if s != excluding { cursor[id] = c; return s }
        }
        return nil
    }

    /// A pooled connection to that server, or a new one.
    func connection(_ backend: BackendRuntime, server: Int) throws(ProxyFailure) -> BackendConnection {
        let key = Key(backend: ObjectIdentifier(backend), server: server)
        while let c = idle[key]?.popLast() {
            if c.phase == .ready {
                c.reused = true
                c.deadline = 0
                return c
            }
        }
        let session = backend.config.tls.sessionReuse ? sessions[key] : nil
        return try BackendConnection(worker: worker, backend: backend, serverIndex: server, session: session)
    }

    /// Keeps a connection whose last exchange ended cleanly, up to `keepalive` per server.
    func release(_ c: BackendConnection) {
        c.owner = nil
        let key = Key(backend: ObjectIdentifier(c.backend), server: c.serverIndex)
        guard c.phase == .ready, c.inBuf.isEmpty, c.outBuf.isEmpty, !c.tls.hasPending,
              idle[key, default: []].count < c.backend.config.keepalive else {
            c.close(); return
        }
        // TLS 1.3 tickets arrive after the handshake: by now the session is resumable.
        if !c.reused { rememberSession(of: c) }
        c.inBuf.releaseIfEmpty()
        c.outBuf.releaseIfEmpty()
        idle[key, default: []].append(c)
        worker.loop.setInterest(fd: c.fd, .read)
        c.deadline = worker.loop.now + UInt64(c.backend.config.keepaliveTimeoutMs)
        worker.loop.schedule(c)
    }

    func discard(_ c: BackendConnection) {
        let key = Key(backend: ObjectIdentifier(c.backend), server: c.serverIndex)
        idle[key]?.removeAll { $0 === c }
        c.close()
    }

    private func rememberSession(of c: BackendConnection) {
        guard c.backend.config.tls.sessionReuse, let s = c.tls.copySession() else { return }
        let key = Key(backend: ObjectIdentifier(c.backend), server: c.serverIndex)
        if let old = sessions[key] { SSL_SESSION_free(old) }
        sessions[key] = s
    }

    func closeAll() {
        for list in idle.values { for c in list { c.close() } }
        idle = [:]
    }
}
