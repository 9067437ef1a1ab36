import Foundation
import Testing

/// Bad requests get the right status, the connection closes when framing is lost,
/// and nothing else is disturbed.
@Suite(.serialized)
struct BadInputTests {
    static let smuggling: [(String, String)] = [
        ("CL and TE", "POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two different CL", "POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("malformed CL", "POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: +5\r\n\r\nhello"),
        ("TE not chunked last", "POST / HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        ("bad chunk size", "POST / HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: api.example.test\r\nX-A: 1\r\n  folded\r\n\r\n"),
        ("space before colon", "GET / HTTP/1.1\r\nHost: api.example.test\r\nX-A : 1\r\n\r\n"),
        ("bare CR", "GET / HTTP/1.1\r\nHost: api.example.test\r\nX-A: 1\r2\r\n\r\n"),
        ("invalid header name", "GET / HTTP/1.1\r\nHost: api.example.test\r\nX(A): 1\r\n\r\n"),
    ]

    @Test func smugglingVectorsAre400AndClose() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        for (name, request) in Self.smuggling {
            let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
            try c.send(request)
            let all = c.readAll()   // returns when the gateway closes
            #expect(all.hasPrefix("HTTP/1.1 400 "), "\(name): \(all.prefix(200))")
            #expect(all.contains("Connection: close"), "\(name)")
            #expect(!all.contains("\"method\""), "\(name): reached the backend")
        }
        #expect(try decodeEcho(try s.curl("/").out).method == "GET", "the gateway still serves")
    }

    @Test func limitsGiveTheirStatuses() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config().replacingOccurrences(
            of: "limits { header_timeout 2s; idle_timeout 10s; max_body_size 64m; }",
            with: "limits { header_timeout 1s; idle_timeout 10s; max_body_size 1k; max_uri_size 100; max_header_size 1k; max_headers 5; }"))
        func status(_ request: String) throws -> String {
            let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
            try c.send(request)
            return String(c.readAll().prefix(12))
        }
        let longURI = "GET /" + String(repeating: "a", count: 200) + " HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
        #expect(try status(longURI) == "HTTP/1.1 414")
        let longURIAndHead = "GET /" + String(repeating: "a", count: 2000) + " HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
        #expect(try status(longURIAndHead) == "HTTP/1.1 414", "414 wins over 431")
        let bigHead = "GET / HTTP/1.1\r\nHost: api.example.test\r\nX-Big: " + String(repeating: "b", count: 2000) + "\r\n\r\n"
        #expect(try status(bigHead) == "HTTP/1.1 431")
        let many = "GET / HTTP/1.1\r\nHost: api.example.test\r\n" + (1...6).map { "X-\($0): 1\r\n" }.joined() + "\r\n"
        #expect(try status(many) == "HTTP/1.1 431")
        let bigBody = "POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "x", count: 5000)
        #expect(try status(bigBody) == "HTTP/1.1 413")
        let bigChunked = "POST / HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + String(repeating: "x", count: 2048) + "\r\n0\r\n\r\n"
        #expect(try status(bigChunked) == "HTTP/1.1 413")
        #expect(try status("GET / HTTP/1.1\r\nHost: api.example.test\r\nX-Slow: ") == "HTTP/1.1 408")
    }

    /// After a 400 the gateway reads and drops what the client is still sending (up to 64 KiB
    /// or 1 s), so the client gets the whole response, then the connection closes.
    @Test func errorResponseSurvivesTrailingBytesThenCloses() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try c.send("POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + String(repeating: "x", count: 32 * 1024))
        let started = Date()
        let all = c.readAll()
        #expect(all.hasPrefix("HTTP/1.1 400"), "\(all.prefix(200))")
        #expect(all.contains("Connection: close"))
        #expect(Date().timeIntervalSince(started) < 3, "closed after the drain, not at the client's timeout")
    }

    @Test func misdirectedHostIs421() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        // SNI foo.example.test (no client auth) asking for api.example.test (client_auth optional): different policy.
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "foo.example.test")
        try c.send("GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 421)
        try c.send("GET / HTTP/1.1\r\nHost: bar.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 200, "same wildcard block: same policy")
    }
}

/// Configuration errors: FILE:LINE:COL, exit 2, nothing listening.
@Suite(.serialized)
struct ConfigErrorTests {
    @Test func httpBackendIsALoadErrorAndNothingListens() throws {
        let s = try Stack()
        let text = s.config(server: "http://127.0.0.1:\(s.echoPort)")
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("server http://") }! + 1
        let r = try run([try Repo.binary("gateway"), "run", "-c", s.configPath], timeout: 20)
        #expect(r.status == 2)
        #expect(r.err.contains("\(s.configPath):\(line):"), "\(r.err)")
        #expect(r.err.contains("GW.Backend.HTTPS"))
        #expect(!portIsOpen(s.gatewayPort))
        let check = try run([try Repo.binary("gateway"), "check", "-c", s.configPath])
        #expect(check.status == 2)
        #expect(check.err.contains("GW.Backend.HTTPS"))
    }

    @Test func keyNotMatchingItsCertificateIsALoadError() throws {
        let s = try Stack()
        let c = Repo.certs
        let text = s.config().replacingOccurrences(of: "\(c)/api.example.test.pem \(c)/api.example.test.key",
                                                    with: "\(c)/api.example.test.pem \(c)/other.test.key")
        try text.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let r = try run([try Repo.binary("gateway"), "check", "-c", s.configPath])
        #expect(r.status == 2)
        #expect(r.err.contains("does not match"), "\(r.err)")
        #expect(r.err.contains("\(s.configPath):"))
    }

    @Test func versionLine() throws {
        let r = try run([try Repo.binary("gateway"), "version"])
        #expect(r.status == 0)
        let pattern = #/^tls-gateway \S+ \(Swift \d+\.\d+(\.\d+)?, OpenSSL \d+\.\d+\.\d+\)\n$/#
        #expect(r.out.wholeMatch(of: pattern) != nil, "\(r.out)")
    }
}
