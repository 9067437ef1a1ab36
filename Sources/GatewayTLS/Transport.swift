import GatewaySystem

/// A connection's bytes over its TLS session: what was read and not used yet, what waits to
/// be written, and the one read loop and the one write loop every connection (client,
/// backend, tunnel) goes through. The codecs above it see only the buffers.
public struct Transport: ~Copyable {
    public let session: TLSSession
    public var input: ByteBuffer
    public var output: ByteBuffer

    public init(_ session: TLSSession, buffers: BufferPool) {
        self.session = session
        input = ByteBuffer(pool: buffers)
        output = ByteBuffer(pool: buffers)
    }

    /// One read into `input`.
    public mutating func read(minimum: Int = 16 * 1024) -> TLSSession.Status {
        let status = session.read(into: input.writableSpace(minimum: minimum))
        if case .done(let n) = status { input.didWrite(n) }
        return status
    }

    /// Reads until `input` holds `limit` bytes or the socket would block; false when the peer
    /// closed or the connection failed. Sets `progress` when a byte arrived.
    public mutating func fill(upTo limit: Int, progress: inout Bool) -> Bool {
        while input.readableCount < limit {
            switch read() {
            case .done: progress = true
            case .wantRead, .wantWrite: return true
            case .closed, .failed: return false
            }
        }
        return true
    }

    /// Writes `output` until it is empty or the socket would block; false when the connection failed.
    public mutating func flush(progress: inout Bool) -> Bool { Self.write(&output, to: session, progress: &progress) }

    /// Writes `bytes` (the other side's input, in a tunnel) until it is empty or the socket
    /// would block; false when the connection failed.
    public func send(_ bytes: inout ByteBuffer, progress: inout Bool) -> Bool {
        Self.write(&bytes, to: session, progress: &progress)
    }

    /// Calls `session.write` again at once while it takes bytes and some are left (what its
    /// MSG_MORE relies on: the kernel holds the earlier records for the later ones).
    private static func write(_ bytes: inout ByteBuffer, to session: TLSSession, progress: inout Bool) -> Bool {
        while !bytes.isEmpty {
            switch session.write(bytes.readable) {
            case .done(let n): bytes.consume(n); progress = true
            case .wantWrite, .wantRead: return true
            case .closed, .failed: return false
            }
        }
        return true
    }
}
