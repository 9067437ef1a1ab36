// One HTTP/2 request as gateway-echo sees it (method, path, merged headers, body digest, the
// gRPC body), and the minimal gRPC echo: the request's length-prefixed messages come back,
// then trailers with grpc-status 0; `/fail` or `x-echo-grpc-status: N` answers that status
// trailers-only, as a gRPC server does for an error.
import COpenSSL
import GatewayHTTP2

final class EchoH2Stream {
    let method: String
    let path: String
    let headers: [(String, String)]
    let isHEAD: Bool
    /// `content-type: application/grpc...`: the gRPC echo answers.
    let isGRPC: Bool
    /// The client sent `te: trailers`: the answer ends with trailers.
    let wantsTrailers: Bool
    var length = 0
    let digest = Digest()
    /// The gRPC request body (kept up to `grpcLimit`; past it the answer is RESOURCE_EXHAUSTED).
    var grpcBody: [UInt8] = []
    static let grpcLimit = 16 << 20

    /// A body being produced (/bytes/N over HTTP/2): bytes left, which pattern, trailers after.
    var producing = false
    var remaining = 0
    var patternIsText = false
    var trailersAfter: HTTP2Fields?

    init(_ head: HTTP2RequestHead) {
        func s(_ r: Range<Int>) -> String { String(decoding: head[r], as: UTF8.self) }
        method = s(head.method)
        path = head.path.map(s) ?? ""
        var merged: [(String, String)] = []
        if let a = head.authority { merged.append((":authority", s(a))) }
        for f in head.fields.fields {
            let name = s(f.name), value = s(f.value)
            if let i = merged.firstIndex(where: { $0.0 == name }) { merged[i].1 += ", " + value } else { merged.append((name, value)) }
        }
        headers = merged
        isHEAD = method == "HEAD"
        isGRPC = merged.first { $0.0 == "content-type" }?.1.hasPrefix("application/grpc") ?? false
        wantsTrailers = merged.first { $0.0 == "te" }?.1 == "trailers"
    }

    func take(_ b: UnsafeRawBufferPointer) {
        digest.update(b)
        length += b.count
        if isGRPC && grpcBody.count + b.count <= Self.grpcLimit { grpcBody += b }
    }

    func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }

    /// Chunks of the /bytes and /text patterns: a whole number of periods, so every piece
    /// continues the pattern (byte i is i % 251, or repeated lines of text).
    static let bytePiece: [UInt8] = (0..<(251 * 256)).map { UInt8($0 % 251) }
    static let textPiece: [UInt8] = {
        let line = Array("the quick brown fox jumps over the lazy dog 0123456789\n".utf8)
        return (0..<(line.count * 1170)).map { line[$0 % line.count] }
    }()
}

extension EchoH2Connection {
    func answerGRPC(_ id: Int32, _ st: EchoH2Stream) {
        var h = HTTP2Fields()
        h.append(Array("content-type".utf8), Array((st.header("content-type") ?? "application/grpc").utf8))
        let asked = st.header("x-echo-grpc-status").flatMap { Int($0) }
        var status = asked ?? (st.path.hasSuffix("/fail") ? 5 : 0)
        var message = status == 0 ? "" : "echo: asked to fail"
        // Only whole length-prefixed messages (1 flag byte, 4 length bytes) are echoed.
        var end = 0
        let b = st.grpcBody
        while end + 5 <= b.count {
            let n = b[end + 1..<end + 5].reduce(0) { $0 << 8 | Int($1) }
            guard end + 5 + n <= b.count else { break }
            end += 5 + n
        }
        if status == 0 && st.length > EchoH2Stream.grpcLimit { status = 8; message = "echo: request over 16 MiB" }
        if status == 0 && end != b.count { status = 13; message = "echo: incomplete message" }
        if status != 0 {
            // Trailers-only: one HEADERS with END_STREAM carries the status.
            h.append(Array("grpc-status".utf8), Array(String(status).utf8))
            h.append(Array("grpc-message".utf8), Array(message.utf8))
            try? session.respond(id, status: 200, headers: h, endStream: true)
            streams[id] = nil
            return
        }
        var t = HTTP2Fields()
        t.append("grpc-status", "0")
        do throws(HTTP2Error) { try session.respond(id, status: 200, headers: h, endStream: false) } catch { return }
        let sent = end == 0 || b.withUnsafeBytes { r -> Bool in
            do throws(HTTP2Error) { try session.sendData(id, UnsafeRawBufferPointer(rebasing: r[0..<end]), endStream: false); return true } catch { return false }
        }
        if sent { try? session.sendTrailers(id, t) }
        streams[id] = nil
    }
}

extension EchoRequest {
    init(method: String, target: String, headers: [(String, String)], isHEAD: Bool) {
        self.method = method; self.target = target; self.headers = headers; self.isHEAD = isHEAD
    }
}

/// Incremental SHA-256 through OpenSSL's EVP interface, as a class (a stream keeps it).
final class Digest {
    private let ctx = EVP_MD_CTX_new()
    init() { EVP_DigestInit_ex(ctx, EVP_sha256(), nil) }
    deinit { EVP_MD_CTX_free(ctx) }
    func update(_ b: UnsafeRawBufferPointer) { if b.count > 0 { EVP_DigestUpdate(ctx, b.baseAddress, b.count) } }
    func hex() -> String {
        var md = [UInt8](repeating: 0, count: 32)
        var n: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &md, &n)
        return md.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
