import GatewaySystem
import GatewayTLS

/// An accepted connection whose client has not sent a byte yet: a small object, no TLS state.
/// OpenSSL's `SSL` (~9 KB) and the 16 KiB buffer its first handshake step fills (OpenSSL 3.0
/// zeroes it) are made only once bytes arrive, so a flood of TCP connections that never send a
/// ClientHello costs a few hundred bytes each, not ~30 KB. The epoll registration is the one the
/// ClientConnection keeps (edge-triggered read and write): the hand-over is no syscall, and the
/// deadline stays the accept's (`handshake_timeout` counts from the accept, as before).
final class PendingConnection: EventHandler, TimerTarget {
    let fd: Int32
    let peer: SocketAddress
    let listener: ListenerRuntime
    let snapshot: RuntimeSnapshot
    /// unowned(unsafe): a worker outlives its connections.
    unowned(unsafe) let worker: Worker
    var deadline: UInt64 = 0
    var timerSlot = 0

    static func start(fd: Int32, peer: SocketAddress, listener: ListenerRuntime, snapshot: RuntimeSnapshot, worker: Worker) {
        let p = PendingConnection(fd: fd, peer: peer, listener: listener, snapshot: snapshot, worker: worker)
        do { try worker.loop.register(fd: fd, handler: p, interest: [.read, .write, .edge]) } catch {
            worker.logs.error.log(.error, "register_failed", error.description)
            Descriptor.close(fd); return
        }
        worker.pending[ObjectIdentifier(p)] = p
        worker.relief.noteCount(worker.connectionCount)
        p.deadline = worker.loop.now + UInt64(snapshot.config.limits.handshakeTimeoutMs)
        worker.loop.schedule(p)
    }

    private init(fd: Int32, peer: SocketAddress, listener: ListenerRuntime, snapshot: RuntimeSnapshot, worker: Worker) {
        self.fd = fd; self.peer = peer; self.listener = listener; self.snapshot = snapshot; self.worker = worker
    }

    /// The first edge after registering only says the socket is writable: nothing to do until a
    /// byte (or the peer's FIN or reset) makes it readable.
    override func handleEvent(readable: Bool, writable: Bool) {
        guard readable else { return }
        let deadline = self.deadline
        forget()
        ClientConnection.start(fd: fd, peer: peer, listener: listener, snapshot: snapshot, worker: worker,
                               registered: true, handshakeDeadline: deadline, writable: writable)
    }

    /// No byte within `handshake_timeout`: logged and counted as a handshake timeout, as a
    /// connection that had started its handshake would be.
    func deadlineExpired(now: UInt64) {
        ClientConnection.logHandshakeTimeout(worker: worker, snapshot: snapshot, peer: peer)
        end()
    }

    /// Closes the connection (a timeout, a drain, a forced stop).
    func end() {
        forget()
        worker.loop.closeAndDeregister(fd: fd)
    }

    private func forget() {
        worker.loop.cancel(self)
        worker.pending[ObjectIdentifier(self)] = nil
    }
}
