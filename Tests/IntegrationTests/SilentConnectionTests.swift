import Foundation
import Testing

/// A connection whose client sends nothing holds no TLS state until a byte arrives
/// (PendingConnection), and is still what it was before: closed and logged at
/// `handshake_timeout` counted from the accept, counted toward `max_connections`, closed by a
/// drain; a client that sends its ClientHello late is served.
@Suite(.serialized)
struct SilentConnectionTests {
    static func start(_ limits: String) throws -> Stack {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config().replacingOccurrences(of: "limits { header_timeout 2s;", with: "limits { \(limits) header_timeout 2s;"))
        return s
    }

    /// Reads until the gateway closes; the seconds it took, or nil when it kept the socket past `wait`.
    static func secondsUntilClosed(_ fd: Int32, wait: Int = 8) -> Double? {
        var tv = timeval(tv_sec: wait, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let started = Date()
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buf, buf.count, 0)
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
        return Date().timeIntervalSince(started)
    }

    @Test func aSilentConnectionIsClosedAtHandshakeTimeout() throws {
        let s = try Self.start("handshake_timeout 1s;")
        let fd = try #require(connectLoopback(s.gatewayPort))
        defer { close(fd) }
        let took = try #require(Self.secondsUntilClosed(fd), "closed by handshake_timeout")
        #expect(took > 0.7 && took < 4, "closed after \(took) s (handshake_timeout 1s)")
        #expect(eventually { s.gateway!.stdout.contains(#""event":"tls_handshake_failed","client":"127.0.0.1","sni":null,"reason":"handshake timeout""#) },
                "\(s.gateway!.stdout)")
        #expect(try s.curl("/after").status == 0)
    }

    /// The deadline counts from the accept: a ClientHello that comes late still has to finish
    /// within it, and one that comes in time is served.
    @Test func aLateClientHelloIsServedWithinTheAcceptsDeadline() throws {
        let s = try Self.start("handshake_timeout 2s;")
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "foo.example.test", preamble: { _ in usleep(700_000) })
        try c.send("GET /late HTTP/1.1\r\nHost: foo.example.test\r\nConnection: close\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        let fd = try #require(connectLoopback(s.gatewayPort))
        defer { close(fd) }
        usleep(1_500_000)
        // One byte of a ClientHello at 1.5 s: the TLS side starts, but the accept's 2 s still apply.
        _ = [UInt8]([0x16]).withUnsafeBytes { send(fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }
        let took = try #require(Self.secondsUntilClosed(fd), "closed by handshake_timeout")
        #expect(took < 1.5, "closed \(took) s after the first byte: the deadline did not restart")
    }

    @Test func aSilentConnectionCountsTowardMaxConnectionsAndIsDrained() throws {
        let s = try Self.start("max_connections 1; handshake_timeout 20s;")
        // startGateway's probe (connect, close) counts until its EOF event is handled.
        usleep(300_000)
        let silent = try #require(connectLoopback(s.gatewayPort))
        defer { close(silent) }
        usleep(200_000)
        let second = try #require(connectLoopback(s.gatewayPort))
        defer { close(second) }
        let refusedAfter = Self.secondsUntilClosed(second, wait: 3)
        #expect(refusedAfter.map { $0 < 1 } == true, "over max_connections 1: closed at once")
        let started = Date()
        s.gateway!.signal(SIGTERM)
        #expect(s.gateway!.waitForExit(timeout: 10) == 0)
        #expect(Date().timeIntervalSince(started) < 5, "the drain closed the silent connection (handshake_timeout is 20 s)")
    }
}

/// After a surge of connections has passed, the worker gives its free memory back to the kernel
/// (MemoryRelief: armed above 512 connections, acts once the count has halved) and goes on serving.
@Suite(.serialized)
struct FloodReliefTests {
    @Test func memoryIsReleasedAfterAFloodAndTheGatewayStillServes() throws {
        let s = try SilentConnectionTests.start("max_connections 2000;")
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<600 { fds.append(try #require(connectLoopback(s.gatewayPort))) }
        // A few full handshakes among them, as a flood of real clients makes.
        for i in 0..<5 { #expect(try s.curl("/during\(i)").status == 0) }
        #expect(!s.gateway!.stderr.contains("memory_released"), "nothing is released while the connections are open")
        for fd in fds { close(fd) }
        fds = []
        try s.gateway!.waitForStderr(#""event":"memory_released""#, timeout: 10)
        #expect(s.gateway!.stderr.contains(#""peak":6"#), "\(s.gateway!.stderr)")
        #expect(try s.curl("/after").status == 0)
    }

    /// Backend handshakes count as handshakes in flight: requests that arrive together on
    /// connections which finished their own handshakes one at a time open that many backend
    /// connections at once, and once those handshakes are over the worker gives back the free
    /// heap they left (before, only a burst of client handshakes did).
    @Test func aBurstOfBackendHandshakesIsReleased() throws {
        let s = try SilentConnectionTests.start("")
        var clients: [TLSTestClient] = []
        for _ in 0..<80 { clients.append(try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")) }
        for (i, c) in clients.enumerated() { try c.send("GET /burst\(i) HTTP/1.1\r\nHost: api.example.test\r\n\r\n") }
        for c in clients { #expect(try c.readResponse().status == 200) }
        try s.gateway!.waitForStderr(#""event":"memory_released""#, timeout: 10)
        let line = try #require(s.gateway!.stderr.split(separator: "\n").first { $0.contains("memory_released") })
        let peak = try #require(line.firstMatch(of: /"handshake_peak":(\d+)/).flatMap { Int($0.1) })
        #expect(peak >= 32, "the backend connections' handshakes made the burst: \(line)")
        #expect(line.contains(#""peak":8"#), "80 client connections (and the probe), no connection surge: \(line)")
        try clients[0].send("GET /after HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try clients[0].readResponse().status == 200)
    }
}
