// Our HTTP2ClientSession against our HTTP2ServerSession in memory, both real nghttp2: bytes
// moved both ways until neither side has anything to say, events and the client's frames
// recorded (to see which WINDOW_UPDATE frames it sent, and when).
import GatewayHTTP2
import GatewaySystem

final class ClientPair {
    let client: HTTP2ClientSession
    let server: HTTP2ServerSession
    var clientEvents: [HTTP2ClientEvent] = []
    var serverEvents: [HTTP2Event] = []
    /// Every frame the client wrote (after its 24-byte preface).
    var clientFrames: [Frame] = []
    private var prefaceSeen = false

    init(client: HTTP2Config = HTTP2Config(), server: HTTP2Config = HTTP2Config()) throws {
        self.client = try HTTP2ClientSession(config: client)
        self.server = try HTTP2ServerSession(config: server)
    }

    /// Moves bytes until both sides are quiet; the error the server threw, if any.
    @discardableResult
    func pump() -> HTTP2Error? {
        for _ in 0..<10_000 {
            let out = drainClient(client)
            if !prefaceSeen && out.count >= clientPreface.count {
                precondition(expectPrefaceBytes(out), "the client preface leads")
                prefaceSeen = true
                clientFrames += parseFrames(Array(out.dropFirst(clientPreface.count)))
            } else {
                clientFrames += parseFrames(out)
            }
            if !out.isEmpty, let e = receive(server, out) { return e }
            let back = drain(server)
            serverEvents += drainEvents(server)
            if !back.isEmpty { _ = feedClient(client, back) }
            clientEvents += drainClientEvents(client)
            if out.isEmpty && back.isEmpty { return nil }
        }
        return HTTP2Error("pump did not settle")
    }

    /// The WINDOW_UPDATE increments the client sent for `stream`.
    func clientWindowUpdates(_ stream: Int32) -> [UInt32] {
        clientFrames.filter { $0.type == FrameType.windowUpdate.rawValue && $0.stream == stream }.map(\.u32)
    }

    func take() -> [HTTP2ClientEvent] { defer { clientEvents = [] }; return clientEvents }
}

/// The client's preface must lead its first write (the assertion lives here so pump stays short).
func expectPrefaceBytes(_ out: [UInt8]) -> Bool { Array(out.prefix(clientPreface.count)) == clientPreface }

func drainClient(_ c: HTTP2ClientSession) -> [UInt8] {
    var buf = ByteBuffer()
    try? c.write(into: &buf)
    return Array(buf.readable)
}

/// Feeds the client raw bytes; the error it threw, if any.
func feedClient(_ c: HTTP2ClientSession, _ bytes: [UInt8]) -> HTTP2Error? {
    bytes.withUnsafeBytes { b -> HTTP2Error? in
        do throws(HTTP2Error) { _ = try c.receive(b); return nil } catch { return error }
    }
}

func drainClientEvents(_ c: HTTP2ClientSession) -> [HTTP2ClientEvent] {
    var out: [HTTP2ClientEvent] = []
    while let e = c.nextEvent() { out.append(e) }
    return out
}

/// sendData from an array (a typed-throws closure through withUnsafeBytes crashes swiftc 6.3.1).
func clientSendData(_ c: HTTP2ClientSession, _ id: Int32, _ bytes: [UInt8], endStream: Bool) throws {
    let e = bytes.withUnsafeBytes { b -> HTTP2Error? in
        do throws(HTTP2Error) { try c.sendData(id, b, endStream: endStream); return nil } catch { return error }
    }
    if let e { throw e }
}

func fields(_ pairs: [(String, String)]) -> HTTP2Fields {
    var f = HTTP2Fields()
    for (n, v) in pairs { f.append(Array(n.utf8), Array(v.utf8)) }
    return f
}

func pairs(_ f: HTTP2Fields) -> [String] { f.fields.map { text(f[$0.name]) + "=" + text(f[$0.value]) } }
