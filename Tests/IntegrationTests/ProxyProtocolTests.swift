import Foundation
import Testing

/// SPEC §11 PROXY protocol with real sockets: headers from a trusted peer (whole and split across
/// TCP segments) set the client the backend and the log see, and deny applies to it; an untrusted
/// peer, no header, garbage or a header that never completes are closed before any ServerHello,
/// each counted in gateway_proxy_protocol_rejected_total.
@Suite(.serialized)
struct ProxyProtocolTests {
    /// Port 1 trusts 127.0.0.1 and denies 198.51.100.0/24; port 2 trusts only 10.0.0.0/8; an admin port for /metrics.
    static func start() throws -> (Stack, untrusted: UInt16, admin: UInt16) {
        let s = try Stack()
        let untrustedPort = freePort(), adminPort = freePort()
        try s.startEcho()
        let text = s.config(topExtra: "admin 127.0.0.1:\(adminPort);")
            .replacingOccurrences(of: "limits { header_timeout 2s;", with: "limits { handshake_timeout 1s; header_timeout 2s;")
            .replacingOccurrences(of: "unknown_sni reject; }", with: """
            unknown_sni reject; proxy_protocol on; proxy_protocol_from 127.0.0.1 10.1.0.0/16; deny 198.51.100.0/24; }
            listen 127.0.0.1:\(untrustedPort) { default_host api.example.test; proxy_protocol on; proxy_protocol_from 10.0.0.0/8; }
            """)
        try s.startGateway(text)
        // startGateway saw the first port accept; the tests go straight to the second. Under load
        // (an ASan build on busy cores) the gateway can be descheduled between binding the two, and
        // that connect was refused. "started" is logged once every listener is bound (and it is
        // this gateway's own line, not another process that happens to hold the port).
        try s.gateway!.waitForStderr(#""event":"started""#)
        return (s, untrustedPort, adminPort)
    }

    static let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// HAProxy `send-proxy-v2` for 203.0.113.20:51000 -> 127.0.0.1:443, with an AWS-style TLV to skip.
    static let v2: [UInt8] = {
        let tlv: [UInt8] = [0xEA, 0x00, 0x05, 0x01, 0x76, 0x70, 0x63, 0x65]
        let body: [UInt8] = [203, 0, 113, 20, 127, 0, 0, 1, 0xC7, 0x38, 0x01, 0xBB] + tlv
        return sig + [0x21, 0x11, 0x00, UInt8(body.count)] + body
    }()

    static func sendRaw(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends `bytes` in `pieces` separate segments (Nagle off, a pause between them).
    static func sendSplit(_ fd: Int32, _ bytes: [UInt8], pieces: Int) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let step = max(1, bytes.count / pieces)
        var i = 0
        while i < bytes.count {
            sendRaw(fd, Array(bytes[i..<min(bytes.count, i + step)]))
            i += step
            usleep(80_000)
        }
    }

    /// One request through a header sent by `preamble`; the echo's view of the request.
    static func request(_ s: Stack, port: UInt16? = nil, _ preamble: @escaping (Int32) -> Void) throws -> EchoReply {
        let c = try TLSTestClient(port: port ?? s.gatewayPort, serverName: "foo.example.test", preamble: { preamble($0) })
        try c.send("GET /pp HTTP/1.1\r\nHost: foo.example.test\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 200, "\(r.head)")
        return try decodeEcho(r.body)
    }

    /// Connects, sends `bytes`, and returns what came back before the gateway closed (nil: nothing, as required).
    /// `closeAfterSending`: the client shuts its side down after the bytes (a peer that gives up mid-header).
    static func refused(_ port: UInt16, _ bytes: [UInt8], wait: Double = 3, closeAfterSending: Bool = false) -> [UInt8]? {
        guard let fd = connectLoopback(port) else { return [0xFF] }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(wait), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        sendRaw(fd, bytes)
        if closeAfterSending { shutdown(fd, Int32(SHUT_WR)) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let started = Date()
        let n = recv(fd, &buf, buf.count, 0)
        if n > 0 { return Array(buf[0..<n]) }
        // EOF (0) or a reset: closed. A timeout (EAGAIN after `wait`) means the gateway kept it open.
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && Date().timeIntervalSince(started) >= wait - 0.1 { return [] }
        return nil
    }

    @Test func v1AndV2FromATrustedPeerSetTheClient() throws {
        let (s, _, _) = try Self.start()
        let v1 = try Self.request(s) { Self.sendRaw($0, Array("PROXY TCP4 203.0.113.10 127.0.0.1 40000 443\r\n".utf8)) }
        #expect(v1.headers["x-forwarded-for"] == "203.0.113.10", "the client's own X-Forwarded-For is replaced by the header's address")
        let v2 = try Self.request(s) { Self.sendRaw($0, Self.v2) }
        #expect(v2.headers["x-forwarded-for"] == "203.0.113.20")
        let v6 = try Self.request(s) { Self.sendRaw($0, Array("PROXY TCP6 2001:db8::9 ::1 40000 443\r\n".utf8)) }
        #expect(v6.headers["x-forwarded-for"] == "2001:db8::9")
        // LOCAL (a load balancer's own health check) and UNKNOWN keep the peer's address.
        let local = try Self.request(s) { Self.sendRaw($0, Self.sig + [0x20, 0x00, 0x00, 0x00]) }
        #expect(local.headers["x-forwarded-for"] == "127.0.0.1")
        let unknown = try Self.request(s) { Self.sendRaw($0, Array("PROXY UNKNOWN\r\n".utf8)) }
        #expect(unknown.headers["x-forwarded-for"] == "127.0.0.1")
        #expect(eventually { s.gateway!.stdout.contains(#""client":"203.0.113.20""#) })
        let log = s.gateway!.stdout
        #expect(log.contains(#""client":"203.0.113.10""#) && log.contains(#""client":"2001:db8::9""#), "\(log)")
    }

    @Test func headersSplitAcrossSegmentsThenTheHandshake() throws {
        let (s, _, _) = try Self.start()
        let v1 = try Self.request(s) { Self.sendSplit($0, Array("PROXY TCP4 203.0.113.30 127.0.0.1 40000 443\r\n".utf8), pieces: 5) }
        #expect(v1.headers["x-forwarded-for"] == "203.0.113.30")
        let v2 = try Self.request(s) { Self.sendSplit($0, Self.v2, pieces: 4) }
        #expect(v2.headers["x-forwarded-for"] == "203.0.113.20")
        // The v2 header and the start of the ClientHello in one segment is the common case; a
        // header whose last byte shares a segment with the hello is covered by the whole-header test.
    }

    @Test func denyAppliesToTheHeadersAddress() throws {
        let (s, _, _) = try Self.start()
        #expect(throws: (any Error).self) {
            _ = try TLSTestClient(port: s.gatewayPort, serverName: "foo.example.test", timeoutSeconds: 3) {
                Self.sendRaw($0, Array("PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n".utf8))
            }
        }
        // The same peer with an allowed client in its header gets through.
        _ = try Self.request(s) { Self.sendRaw($0, Array("PROXY TCP4 203.0.113.11 127.0.0.1 40000 443\r\n".utf8)) }
    }

    @Test func untrustedMissingGarbageAndIncompleteAreClosedBeforeTheHandshake() throws {
        let (s, untrusted, admin) = try Self.start()
        let header = Array("PROXY TCP4 203.0.113.12 127.0.0.1 40000 443\r\n".utf8)
        #expect(Self.refused(untrusted, header) == nil, "a valid header from a peer not in proxy_protocol_from")
        #expect(Self.refused(s.gatewayPort, Array("HELLO\r\n".utf8)) == nil, "garbage")
        #expect(Self.refused(s.gatewayPort, Self.sig + [0x21, 0x11, 0x00, 0x10] + [UInt8](repeating: 1, count: 12) + [0xEA, 0x00, 0x09, 0x01]) == nil,
                "a v2 TLV that overruns the header")
        let started = Date()
        #expect(Self.refused(s.gatewayPort, Array("PROXY TCP4 203.0.113.1".utf8)) == nil, "a header that never completes")
        #expect(Date().timeIntervalSince(started) > 0.5, "closed by handshake_timeout (1s), not at once")
        #expect(Self.refused(s.gatewayPort, Array("PROXY TCP4 203.0.113.1".utf8), closeAfterSending: true) == nil, "a peer that leaves mid-header")
        // A real TLS client without a header: no ServerHello, not one byte back.
        let r = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(s.gatewayPort)", "-servername", "foo.example.test"], stdin: Data(), timeout: 20)
        #expect((r.out + r.err).contains("read 0 bytes"), "\(r.out)\(r.err)")
        _ = eventually { s.gateway!.stdout.components(separatedBy: "proxy_protocol_rejected").count > 6 }
        let log = s.gateway!.stdout
        for reason in ["peer not in proxy_protocol_from", "not a PROXY protocol header", "v2: TLV 0xea of 9 bytes overruns the header",
                       "PROXY header not complete within handshake_timeout", "connection closed inside the PROXY header"] {
            #expect(log.contains(#""event":"proxy_protocol_rejected","peer":"127.0.0.1","reason":"\#(reason)""#), "\(reason): \(log)")
        }
        #expect(!log.contains("tls_handshake_failed"), "no handshake was ever started")

        // Each rejection counted once, by listener and reason (waitForPort's probe, which sends
        // nothing and leaves, is not a rejection); then promtool on a page with these series.
        let page = try Admin(port: admin).get("/metrics")
        #expect(page.code == 200)
        let m = MetricsPage(page.body)
        let name = "gateway_proxy_protocol_rejected_total"
        let trusted = "127.0.0.1:\(s.gatewayPort)"
        #expect(m.sum(name, ["listen": "127.0.0.1:\(untrusted)", "reason": "untrusted_peer"]) == 1, "\(page.body)")
        #expect(m.sum(name, ["listen": trusted, "reason": "malformed"]) == 3, "garbage, the bad TLV, the ClientHello without a header")
        #expect(m.sum(name, ["listen": trusted, "reason": "timeout"]) == 1)
        #expect(m.sum(name, ["listen": trusted, "reason": "closed"]) == 1)
        #expect(m.sum(name) == 6, "nothing else: \(page.body)")
        #expect(page.body.contains("# TYPE \(name) counter"))
        try ensurePromtool()
        let check = try run(["promtool", "check", "metrics"], stdin: Data(page.body.utf8))
        #expect(check.status == 0, "\(check.out)\(check.err)")
    }

    /// A connection waiting for its header counts toward max_connections, and a drain closes it
    /// at once instead of waiting for handshake_timeout.
    @Test func waitingForTheHeaderCountsAndIsDrained() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config()
            .replacingOccurrences(of: "limits { header_timeout 2s;", with: "limits { max_connections 1; handshake_timeout 20s; header_timeout 2s;")
            .replacingOccurrences(of: "unknown_sni reject; }", with: "unknown_sni reject; proxy_protocol on; proxy_protocol_from 127.0.0.1; }"))
        let waiting = try #require(connectLoopback(s.gatewayPort))
        defer { close(waiting) }
        Self.sendRaw(waiting, Array("PROXY TCP4 ".utf8))   // a header that has not finished arriving
        usleep(200_000)
        #expect(Self.refused(s.gatewayPort, Array("PROXY TCP4 1.2.3.4 127.0.0.1 1 2\r\n".utf8), wait: 2) == nil,
                "the second connection is over max_connections 1")
        let started = Date()
        s.gateway!.signal(SIGTERM)
        #expect(s.gateway!.waitForExit(timeout: 10) == 0)
        #expect(Date().timeIntervalSince(started) < 5, "the drain closed the waiting connection (handshake_timeout is 20 s)")
    }
}
