import Glibc
import GatewayConfig
import GatewayProxyProtocol
import GatewaySystem

/// A connection on a `proxy_protocol on` listener before its TLS handshake (SPEC §11): the peer
/// must be in `proxy_protocol_from`, and its PROXY header must arrive within `handshake_timeout`.
/// Then the header's address becomes the client's (allow/deny, X-Forwarded-For, logs) and the
/// socket is handed to a ClientConnection, as if just accepted.
///
/// Not one byte of the ClientHello is taken: bytes are peeked (MSG_PEEK) and parsed, and only
/// header bytes are consumed: all of them while the parser says `needMore` (its contract: every
/// byte seen is then header), exactly `consumed` once it has the header. OpenSSL's socket BIO
/// reads the rest from the socket itself.
final class ProxyProtocolReader: EventHandler, TimerTarget {
    let fd: Int32
    let peer: SocketAddress
    let listener: ListenerRuntime
    let snapshot: RuntimeSnapshot
    unowned let worker: Worker
    /// Header bytes already consumed from the socket (only when the header spans several reads).
    private var consumed: [UInt8] = []
    private var finished = false
    var deadline: UInt64 = 0
    var timerSlot = 0

    static func start(fd: Int32, peer: SocketAddress, listener: ListenerRuntime, snapshot: RuntimeSnapshot, worker: Worker) {
        guard listener.config.proxyProtocolFrom.contains(where: { $0.contains(peer.ipBytes) }) else {
            rejected(worker, snapshot, listener, peer, .untrustedPeer, "peer not in proxy_protocol_from")
            Descriptor.close(fd)
            return
        }
        let r = ProxyProtocolReader(fd: fd, peer: peer, listener: listener, snapshot: snapshot, worker: worker)
        do { try worker.loop.register(fd: fd, handler: r, interest: .read) } catch {
            worker.logs.error.log(.error, "register_failed", error.description)
            Descriptor.close(fd); return
        }
        worker.proxyReaders[ObjectIdentifier(r)] = r   // counts toward max_connections; closed by a drain
        r.deadline = worker.loop.now + UInt64(snapshot.config.limits.handshakeTimeoutMs)
        worker.loop.schedule(r)
        r.read()   // the header usually arrived with the connection
    }

    private init(fd: Int32, peer: SocketAddress, listener: ListenerRuntime, snapshot: RuntimeSnapshot, worker: Worker) {
        self.fd = fd; self.peer = peer; self.listener = listener; self.snapshot = snapshot; self.worker = worker
    }

    override func handleEvent(readable: Bool, writable: Bool) { read() }

    func deadlineExpired(now: UInt64) {
        reject(.timeout, consumed.isEmpty ? "no PROXY header within handshake_timeout" : "PROXY header not complete within handshake_timeout")
    }

    private func read() {
        let scratch = worker.scratch
        while !finished {
            let room = min(scratch.count, ProxyProtocolParser.defaultMaxV2Length + 1 - consumed.count)
            let window = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<max(room, 1)])
            let n: Int
            switch Socket.receive(fd, into: window, peek: true) {
            case .wouldBlock: return
            case .closed:
                // A port probe that connects and leaves says nothing: not worth a log line.
                if consumed.isEmpty { end() } else { reject(.closed, "connection closed inside the PROXY header") }
                return
            case .failed(let e): reject(.closed, "recv: \(e)"); return   // a reset, in practice
            case .bytes(let k): n = k
            }
            let peeked = UnsafeRawBufferPointer(rebasing: scratch[0..<n])
            let result = consumed.isEmpty ? ProxyProtocolParser.parse(peeked) : ProxyProtocolParser.parse(consumed + peeked)
            switch result {
            case .invalid(let why): reject(.malformed, why); return
            case .needMore:
                consumed += peeked
                guard take(n) else { return }
            case .header(let header, let total):
                guard take(total - consumed.count) else { return }
                handOver(header)
                return
            }
        }
    }

    /// Consumes `count` bytes already seen by the peek (they are in the socket, so recv returns them all).
    private func take(_ count: Int) -> Bool {
        guard count > 0 else { return true }
        let window = UnsafeMutableRawBufferPointer(rebasing: worker.scratch[0..<count])
        guard case .bytes(let n) = Socket.receive(fd, into: window, peek: false), n == count else {
            reject(.closed, "short read consuming the PROXY header"); return false
        }
        return true
    }

    private func handOver(_ header: ProxyHeader) {
        finished = true
        worker.loop.cancel(self)
        worker.proxyReaders[ObjectIdentifier(self)] = nil
        var client = peer
        if header.command == .proxy, let source = header.source, let address = SocketAddress(proxied: source) { client = address }
        worker.loop.deregister(fd: fd)
        // allow/deny judge the client the header names, as they would a direct one.
        guard AccessRules.allows(client.ipBytes, listener.config.access) else { Descriptor.close(fd); return }
        ClientConnection.start(fd: fd, peer: client, listener: listener, snapshot: snapshot, worker: worker)
    }

    private func reject(_ reason: ProxyRejectReason, _ detail: String) {
        guard !finished else { return }
        Self.rejected(worker, snapshot, listener, peer, reason, detail)
        end()
    }

    /// Closes the connection (also from a drain: a header that has not arrived yet is not in flight).
    func end() {
        guard !finished || worker.proxyReaders[ObjectIdentifier(self)] != nil else { return }
        finished = true
        worker.loop.cancel(self)
        worker.proxyReaders[ObjectIdentifier(self)] = nil
        worker.loop.closeAndDeregister(fd: fd)
    }

    /// Counts a rejection (`gateway_proxy_protocol_rejected_total`, by listener and reason) and logs
    /// `{"event": "proxy_protocol_rejected", "peer", "reason"}` with the detailed `reason` text in the
    /// access log (JSON whatever its format, like handshake failures).
    static func rejected(_ worker: Worker, _ snapshot: RuntimeSnapshot, _ listener: ListenerRuntime, _ peer: SocketAddress,
                         _ metric: ProxyRejectReason, _ reason: String) {
        worker.metrics.counters(for: snapshot).countProxyRejected(listener: listener.index, metric)
        guard worker.logs.access.enabled else { return }
        var j = JSONLine()
        j.field("time", timestampNow())
        j.field("event", "proxy_protocol_rejected")
        j.field("peer", peer.ipString)
        j.field("reason", reason)
        j.finished().withUnsafeBytes { worker.logs.access.write($0) }
    }
}

/// `allow`/`deny`: the first rule that matches decides; no match allows (SPEC §10).
enum AccessRules {
    static func allows(_ ip: [UInt8], _ rules: [AccessRule]) -> Bool {
        for r in rules where r.network.map({ $0.contains(ip) }) ?? true { return r.allow }
        return true
    }
}

extension SocketAddress {
    /// The address a PROXY header carries, as the kernel would have given it for a direct client.
    init?(proxied a: ProxyAddress) { self.init(addressBytes: a.bytes, port: a.port) }
}
