import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem

/// Active health checks of one backend on one worker (`health_check PATH interval timeout`):
/// every interval, each server gets `GET PATH` over its own TLS settings; a status below 400
/// in time keeps it in rotation, anything else takes it out until a check passes again.
/// Each worker checks on its own (no shared state between event loops).
final class HealthChecker: TimerTarget {
    unowned let worker: Worker
    let backend: BackendRuntime
    let check: HealthCheck
    var deadline: UInt64
    var timerSlot = 0
    private var probes: [Int: HealthProbe] = [:]
    private var stopped = false

    init(worker: Worker, backend: BackendRuntime, check: HealthCheck) {
        self.worker = worker; self.backend = backend; self.check = check
        deadline = worker.loop.now + 1   // first round right away
        worker.loop.schedule(self)
    }

    func deadlineExpired(now: UInt64) {
        guard !stopped else { return }
        for s in backend.servers.indices where probes[s] == nil {
            probes[s] = HealthProbe(checker: self, server: s)
        }
        deadline = now + UInt64(max(check.intervalMs, 100))
        worker.loop.schedule(self)
    }

    func report(server: Int, up: Bool, reason: String) {
        probes[server] = nil
        guard !stopped else { return }
        worker.pool.setActiveHealth(backend, server: server, up: up, reason: reason)
    }

    func stop() {
        stopped = true
        worker.loop.cancel(self)
        for p in probes.values { p.cancel() }
        probes = [:]
    }
}

/// One check of one server: connect, handshake, `GET PATH`, read the status line.
final class HealthProbe: BackendUser, TimerTarget {
    unowned let checker: HealthChecker
    let server: Int
    var deadline: UInt64
    var timerSlot = 0
    private var conn: UpstreamSession?
    private var sent = false
    private var parser = HTTPResponseParser(maxHeadSize: 16 * 1024)
    /// `protocol h2` backends are checked over HTTP/2 (the ALPN they must select).
    private var h2: HTTP2ClientSession?
    private var finished = false

    init(checker: HealthChecker, server: Int) {
        self.checker = checker
        self.server = server
        let loop = checker.worker.loop
        deadline = loop.now + UInt64(max(checker.check.timeoutMs, 1))
        loop.schedule(self)
        do {
            let c = try UpstreamSession(worker: checker.worker, backend: checker.backend, serverIndex: server, session: nil)
            c.owner = self
            conn = c
        } catch {
            finish(up: false, reason: error.reason)
        }
    }

    func drive() {
        guard let c = conn, !finished else { return }
        if c.phase != .ready {
            switch c.advanceHandshake() {
            case .inProgress: return   // edge-triggered: the next event drives it on
            case .failed(let f): finish(up: false, reason: f.reason); return
            case .ready: break
            }
            if let why = checker.backend.tls.protocolMismatch(c.tls) { finish(up: false, reason: why); return }
        }
        if checker.backend.tls.protocol == .h2 { driveH2(c); return }
        if !sent {
            let host = checker.backend.config.tls.serverName ?? checker.backend.servers[server].config.host
            c.io.output.append("GET \(checker.check.path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: tls-gateway-health-check\r\nConnection: close\r\n\r\n")
            sent = true
        }
        var progress = false
        guard c.io.flush(progress: &progress) else { finish(up: false, reason: "connection lost while sending the check"); return }
        guard c.io.output.isEmpty else { return }
        while true {
            switch c.io.read(minimum: 4096) {
            case .done:
                do {
                    if let head = try parser.parse(c.io.input.readable, requestWasHEAD: false) {
                        finish(up: head.status < 400, reason: "status \(head.status)"); return
                    }
                } catch {
                    finish(up: false, reason: "invalid response: \(error.reason)"); return
                }
            case .wantRead, .wantWrite: return
            case .closed: finish(up: false, reason: "closed before a response"); return
            case .failed(let why): finish(up: false, reason: why.description); return
            }
        }
    }

    /// The same check as an HTTP/2 stream: `GET PATH`, the `:status` of the response.
    private func driveH2(_ c: UpstreamSession) {
        do throws(HTTP2Error) {
            if h2 == nil {
                let s = try HTTP2ClientSession(pool: checker.worker.buffers)
                let host = checker.backend.config.tls.serverName ?? checker.backend.servers[server].config.host
                _ = try s.request(method: "GET", authority: host, path: checker.check.path,
                                  headers: Self.userAgent, endStream: true)
                h2 = s
            }
            let s = h2!
            while true {
                if !c.io.input.isEmpty { c.io.input.consume(try s.receive(c.io.input.readable)) }
                while let e = s.nextEvent() {
                    switch e {
                    case .response(_, let status, _): finish(up: status < 400, reason: "status \(status)"); return
                    case .reset, .streamClosed, .goaway: finish(up: false, reason: "the stream ended before a response"); return
                    case .connectionError(let error): finish(up: false, reason: error.reason); return
                    default: break
                    }
                }
                try s.write(into: &c.io.output)
                var progress = false
                guard c.io.flush(progress: &progress) else { finish(up: false, reason: "connection lost while sending the check"); return }
                switch c.io.read(minimum: 4096) {
                case .done: continue
                case .wantRead, .wantWrite: return
                case .closed: finish(up: false, reason: "closed before a response"); return
                case .failed(let why): finish(up: false, reason: why.description); return
                }
            }
        } catch {
            finish(up: false, reason: error.reason)
        }
    }

    private static let userAgent: HTTP2Fields = {
        var f = HTTP2Fields()
        f.append("user-agent", "tls-gateway-health-check")
        return f
    }()

    func deadlineExpired(now: UInt64) {
        if !finished { finish(up: false, reason: "no response within \(checker.check.timeoutMs) ms") }
    }

    func cancel() {
        finished = true
        checker.worker.loop.cancel(self)
        conn?.owner = nil
        conn?.close()
        conn = nil
    }

    private func finish(up: Bool, reason: String) {
        cancel()
        checker.report(server: server, up: up, reason: reason)
    }
}
