import Foundation
import Testing

/// gateway-echo over HTTP/2 (the h2 backend of the next step), straight to it with curl --http2
/// and nghttp, not through the gateway: ALPN h2, the same answers as over HTTP/1.1, trailers
/// for `te: trailers`, and the gRPC-style echo with grpc-status trailers.
@Suite(.serialized)
struct EchoH2Tests {
    func curl(_ s: Stack, _ path: String, _ extra: [String]) throws -> (status: Int32, out: String, err: String, outData: Data) {
        try run(["curl", "-sS", "--cacert", Repo.cert("backend-ca.pem"), "--resolve", "echo.internal.test:\(s.echoPort):127.0.0.1",
                 "--max-time", "30"] + extra + ["https://echo.internal.test:\(s.echoPort)\(path)"])
    }

    /// nghttp -v against the echo: its frame log (stdout) names every HEADERS and its fields.
    func nghttp(_ s: Stack, _ paths: [String], _ extra: [String] = []) throws -> String {
        let r = try run(["nghttp", "-v", "--no-verify-peer"] + extra + paths.map { "https://127.0.0.1:\(s.echoPort)\($0)" })
        #expect(r.status == 0, "\(r.err)")
        return r.out
    }

    @Test func curlGetsTheSameAnswersOverH2() throws {
        let s = try Stack()
        try s.startEcho(clientCA: nil)
        let post = try curl(s, "/echo?x=1", ["--http2", "-v", "--data-binary", "hello"])
        #expect(post.err.contains("ALPN: server accepted h2") && post.err.contains("< HTTP/2 200"), "\(post.err)")
        let reply = try decodeEcho(post.out)
        #expect(reply.method == "POST" && reply.path == "/echo?x=1" && reply.body_length == 5)
        #expect(reply.body_sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        #expect(reply.headers[":authority"] == "echo.internal.test:\(s.echoPort)" && post.out.contains("\"protocol\": \"HTTP/2\""))
        #expect(try curl(s, "/ok", ["--http2"]).out == "ok\n")
        #expect(try curl(s, "/status/404", ["--http2", "-w", "%{http_code}", "-o", "/dev/null"]).out == "404")
        let h2 = try curl(s, "/bytes/300000", ["--http2"]).outData, h1 = try curl(s, "/bytes/300000", ["--http1.1"]).outData
        #expect(h2.count == 300_000 && h2 == h1)
        let h1Reply = try curl(s, "/echo", ["--http1.1", "-v"])
        #expect(h1Reply.err.contains("< HTTP/1.1 200") && !h1Reply.out.contains("\"protocol\""), "HTTP/1.1 clients still get HTTP/1.1")
    }

    @Test func trailersForTETrailers() throws {
        let s = try Stack()
        try s.startEcho(clientCA: nil)
        let out = try nghttp(s, ["/trailers"], ["-H", "te: trailers"])
        // The trailers arrive after the DATA, in a HEADERS frame with END_STREAM.
        let data = try #require(out.range(of: "recv DATA frame"))
        let trailer = try #require(out.range(of: "x-echo-trailer: 1"), "\(out)")
        #expect(data.lowerBound < trailer.lowerBound)
        #expect(try nghttp(s, ["/ok"], ["-H", "te: trailers"]).contains("x-echo-trailer: 1"), "any answer, when asked")
        #expect(try !nghttp(s, ["/ok"]).contains("x-echo-trailer"), "none when not asked")
        // Two streams on one connection; the delayed one does not hold the other up.
        let both = try nghttp(s, ["/delay/300", "/ok"])
        #expect(both.components(separatedBy: ":status: 200").count == 3, "\(both)")
    }

    @Test func grpcEcho() throws {
        let s = try Stack()
        try s.startEcho(clientCA: nil)
        let messages: [UInt8] = [0, 0, 0, 0, 3] + Array("abc".utf8) + [0, 0, 0, 0, 2] + Array("de".utf8)
        let file = s.dir + "/grpc.bin"
        try Data(messages).write(to: URL(fileURLWithPath: file))
        let grpc = ["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", file]
        let ok = try nghttp(s, ["/pkg.Echo/Call"], grpc)
        #expect(ok.contains("grpc-status: 0") && ok.contains("recv DATA frame <length=15"), "\(ok)")
        let body = try run(["nghttp", "--no-verify-peer"] + grpc + ["https://127.0.0.1:\(s.echoPort)/pkg.Echo/Call"]).outData
        #expect(Array(body) == messages, "the messages come back")
        let fail = try nghttp(s, ["/pkg.Echo/fail"], grpc)
        #expect(fail.contains("grpc-status: 5") && fail.contains("grpc-message: echo: asked to fail") && !fail.contains("recv DATA"), "\(fail)")
        let asked = try nghttp(s, ["/pkg.Echo/Call"], grpc + ["-H", "x-echo-grpc-status: 14"])
        #expect(asked.contains("grpc-status: 14"))
    }
}
