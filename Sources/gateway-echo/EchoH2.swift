// gateway-echo over HTTP/2 (ALPN h2): the same paths as over HTTP/1.1, on the project's own
// HTTP2ServerSession, one blocking thread per connection like the HTTP/1.1 side. Streams are
// answered when their request ends; /delay/MS waits without holding the other streams up (a
// poll timeout on the socket); large bodies are produced as the client's window takes them.
import Glibc
import COpenSSL
import GatewayHTTP2
import GatewaySystem

final class EchoH2Connection {
    let ssl: OpaquePointer
    let fd: Int32
    let name: String
    let healthStatus: Int
    let session: HTTP2ServerSession
    var streams: [Int32: EchoH2Stream] = [:]
    /// Streams answered later (/delay/MS): when, which.
    var delayed: [(due: UInt64, id: Int32)] = []
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)
    private var out = ByteBuffer()

    init?(ssl: OpaquePointer, fd: Int32, name: String, healthStatus: Int) {
        var config = HTTP2Config()
        config.maxHeaderListSize = 1 << 20
        config.maxHeaders = 1000
        guard let s = try? HTTP2ServerSession(config: config) else { return nil }
        self.ssl = ssl; self.fd = fd; self.name = name; self.healthStatus = healthStatus; session = s
    }

    /// Serves until the client or an error ends the connection; true if it ended cleanly.
    func run() -> Bool {
        while true {
            guard flush() else { return false }
            if !session.wantsRead && !session.wantsWrite { return true }
            if SSL_pending(ssl) == 0, let next = delayed.map(\.due).min() {
                let now = monotonicMilliseconds()
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if next <= now || poll(&p, 1, Int32(min(next - now, 1000))) == 0 { answerDue(); continue }
            }
            let n = scratch.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            guard n > 0 else { return SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN }
            let failed = scratch.withUnsafeBytes { b -> Bool in
                do throws(HTTP2Error) { _ = try session.receive(UnsafeRawBufferPointer(rebasing: b[0..<Int(n)])); return false } catch { return true }
            }
            if failed { _ = flush(); return false }   // the GOAWAY nghttp2 queued goes out first
            guard handleEvents() else { _ = flush(); return false }
            answerDue()
        }
    }

    /// Writes everything nghttp2 has to send, topping up the bodies being produced as it drains them.
    private func flush() -> Bool {
        while true {
            produce()
            do throws(HTTP2Error) { try session.write(into: &out, limit: 64 * 1024) } catch { return false }
            if out.readableCount == 0 { return true }
            while out.readableCount > 0 {
                let r = out.readable
                let n = SSL_write(ssl, r.baseAddress, Int32(min(r.count, Int(Int32.max))))
                guard n > 0 else { return false }
                out.consume(Int(n))
            }
        }
    }

    private func handleEvents() -> Bool {
        while let e = session.nextEvent() {
            switch e {
            case .request(let id, let head):
                streams[id] = EchoH2Stream(head)
            case .data(let id, _):
                let b = session.receivedBody(id)
                streams[id]?.take(b)
                session.consume(id, b.count)
            case .endStream(let id):
                if let st = streams[id] { answer(id, st) }
            case .headersTooLarge(let id):
                respond(id, status: 431, type: "text/plain", body: Array("headers too large\n".utf8), trailers: nil)
            case .reset(let id, _), .streamClosed(let id, _):
                streams[id] = nil
                delayed.removeAll { $0.id == id }
            case .connectionError:
                return false
            case .trailers, .malformed, .goaway:
                break
            }
        }
        return true
    }

    private func answerDue() {
        let now = monotonicMilliseconds()
        for d in delayed where d.due <= now {
            if let st = streams[d.id] { json(d.id, st) }
        }
        delayed.removeAll { $0.due <= now }
    }

    /// The HTTP/1.1 side's paths, plus gRPC and /trailers.
    private func answer(_ id: Int32, _ st: EchoH2Stream) {
        if st.isGRPC { return answerGRPC(id, st) }
        let path = st.path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = path.split(separator: "/")
        let number = parts.count == 2 ? Int(parts[1]) : nil
        let trailers: HTTP2Fields? = st.wantsTrailers || path == "/trailers" ? echoTrailers : nil
        switch (parts.first, number) {
        case ("healthz", nil) where parts.count == 1:
            respond(id, status: healthStatus, type: "text/plain", body: Array("health \(healthStatus)\n".utf8), trailers: trailers)
        case ("ok", nil) where parts.count == 1:
            respond(id, status: 200, type: "text/plain", body: Array("ok\n".utf8), trailers: trailers)
        case ("trailers", nil) where parts.count == 1:
            respond(id, status: 200, type: "text/plain", body: Array("trailers follow\n".utf8), trailers: trailers)
        case ("16k", nil) where parts.count == 1:
            respond(id, status: 200, type: "application/octet-stream", body: [UInt8](repeating: UInt8(ascii: "a"), count: 16384), trailers: trailers)
        case ("bytes", let n?), ("chunked", let n?), ("close", let n?): pattern(id, st, n, text: false, trailers: trailers)
        case ("text", let n?): pattern(id, st, n, text: true, trailers: trailers)
        case ("status", let n?) where (200...599).contains(n):
            let empty = n == 204 || n == 304
            respond(id, status: n, type: "text/plain", body: empty ? [] : Array("status \(n)\n".utf8), trailers: empty ? nil : trailers)
        case ("delay", let ms?):
            delayed.append((monotonicMilliseconds() + UInt64(max(0, min(ms, 600_000))), id))
        default:
            json(id, st)
        }
    }

    private func json(_ id: Int32, _ st: EchoH2Stream) {
        let request = EchoRequest(method: st.method, target: st.path, headers: st.headers, isHEAD: st.isHEAD)
        let text = request.json(server: name, body: (st.length, st.digest.hex()), ssl: ssl)
        let trailers: HTTP2Fields? = st.wantsTrailers ? echoTrailers : nil
        respond(id, status: 200, type: "application/json", body: Array(("{\"protocol\": \"HTTP/2\", " + text.dropFirst()).utf8), trailers: trailers)
    }

    /// A fixed body with content-length; HEAD gets the head only.
    func respond(_ id: Int32, status: Int, type: String, body: [UInt8], trailers: HTTP2Fields?) {
        let st = streams[id]
        let head = st?.isHEAD ?? false
        var h = HTTP2Fields()
        h.append("server", "gateway-echo")
        h.append(Array("content-type".utf8), Array(type.utf8))
        if status != 204 && status != 304 { h.append(Array("content-length".utf8), Array(String(body.count).utf8)) }
        let bodyless = head || body.isEmpty
        do throws(HTTP2Error) {
            try session.respond(id, status: status, headers: h, endStream: bodyless && trailers == nil)
        } catch { streams[id] = nil; return }
        // The typed throw stays outside the closure (a typed-throws closure crashes swiftc 6.3.1).
        let sent = bodyless || body.withUnsafeBytes { b -> Bool in
            do throws(HTTP2Error) { try session.sendData(id, b, endStream: trailers == nil); return true } catch { return false }
        }
        if sent, let trailers { try? session.sendTrailers(id, trailers) }
        streams[id] = nil
    }

    /// N pattern bytes (as /bytes/N over HTTP/1.1), produced by `produce` as the window opens.
    private func pattern(_ id: Int32, _ st: EchoH2Stream, _ n: Int, text: Bool, trailers: HTTP2Fields?) {
        var h = HTTP2Fields()
        h.append("server", "gateway-echo")
        h.append(Array("content-type".utf8), Array((text ? "text/plain; charset=utf-8" : "application/octet-stream").utf8))
        h.append(Array("content-length".utf8), Array(String(n).utf8))
        let end = st.isHEAD || (n == 0 && trailers == nil)
        do throws(HTTP2Error) { try session.respond(id, status: 200, headers: h, endStream: end) } catch { return }
        if end { streams[id] = nil; return }
        st.remaining = st.isHEAD ? 0 : n
        st.patternIsText = text
        st.trailersAfter = trailers
        st.producing = true
        if n == 0, let trailers { try? session.sendTrailers(id, trailers); st.producing = false }
    }

    /// Tops up every stream still producing its body to 256 KiB queued.
    private func produce() {
        for (id, st) in streams where st.producing && session.outgoingBuffered(id) < 256 * 1024 {
            let piece = st.patternIsText ? EchoH2Stream.textPiece : EchoH2Stream.bytePiece
            let k = min(st.remaining, piece.count)
            st.remaining -= k
            let last = st.remaining == 0
            let ok = piece.withUnsafeBytes { b -> Bool in
                do throws(HTTP2Error) {
                    try session.sendData(id, UnsafeRawBufferPointer(rebasing: b[0..<k]), endStream: last && st.trailersAfter == nil)
                    return true
                } catch { return false }
            }
            if !ok { st.producing = false; continue }
            if last {
                st.producing = false
                if let t = st.trailersAfter { try? session.sendTrailers(id, t) }
            }
        }
    }
}

/// The trailers a client that sent `te: trailers` gets (and every /trailers response).
let echoTrailers: HTTP2Fields = {
    var t = HTTP2Fields()
    t.append("x-echo-trailer", "1")
    return t
}()
