import CGatewayShims
import COpenSSL
import Glibc
import GatewaySystem
import Testing
@testable import GatewayTLS

/// Writes of more than one record go out with MSG_MORE on all but the last (TLSSession.write):
/// the kernel holds what is marked "more" until a write without it or a push, so nothing the
/// gateway handed over may stay behind when a write loop stops.
@Suite struct RecordBatchTests {
    /// A connected TCP pair on loopback (MSG_MORE means nothing on a unix socket), both ends
    /// non-blocking with TCP_NODELAY, as the gateway's sockets are.
    static func tcpPair() throws -> (Int32, Int32) {
        let listener = try Socket.listen(on: try #require(SocketAddress(ip: "127.0.0.1", port: 0)), reusePort: false)
        defer { close(listener) }
        let a = try Socket.connect(to: try #require(Socket.localAddress(listener)))
        var accepted: Int32?
        for _ in 0..<200 where accepted == nil {
            accepted = try Socket.accept(listener)?.fd
            if accepted == nil { usleep(5_000) }
        }
        let b = try #require(accepted)
        Socket.setNoDelay(b)
        return (a, b)
    }

    /// Reads what arrives on `fd` until `expected` bytes came or `seconds` passed; their count.
    static func arrived(on fd: Int32, expected: Int, within seconds: Double) -> Int {
        var total = 0
        var buf = [UInt8](repeating: 0, count: 65_536)
        let end = monotonicMicroseconds() + UInt64(seconds * 1e6)
        while total < expected && monotonicMicroseconds() < end {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 20) > 0 else { continue }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { total += n }
        }
        return total
    }

    /// Bytes in the socket's send queue that the kernel has not sent yet (`tcpi_notsent_bytes`,
    /// at offset 144 of Linux's `struct tcp_info`, which only ever grows; glibc's header lacks
    /// it). Exact and immediate, where an arrival time would depend on the machine's load.
    static func unsent(_ fd: Int32) -> Int {
        var info = [UInt8](repeating: 0, count: 256)
        var len = socklen_t(info.count)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &len) == 0, len >= 148 else { return -1 }
        return Int(info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 144, as: UInt32.self) })
    }

    @Test func bytesMarkedMoreWaitForTheLastWriteOrAPush() throws {
        let (w, r) = try Self.tcpPair()
        defer { close(w); close(r) }
        let bio = try #require(gw_socket_bio_new(w))
        defer { BIO_free(bio) }
        let chunk = [UInt8](repeating: 1, count: 1000)
        func write() -> Int32 { chunk.withUnsafeBytes { BIO_write(bio, $0.baseAddress, 1000) } }

        gw_socket_bio_set_more(bio, 1)
        #expect(write() == 1000)
        // Held back (until a write, a push, or the kernel's probe timer after ~200 ms).
        #expect(Self.unsent(w) == 1000, "held back: more was said to follow")
        #expect(Self.arrived(on: r, expected: 1, within: 0.1) == 0, "held back: more was said to follow")
        gw_socket_bio_set_more(bio, 0)
        #expect(write() == 1000)
        #expect(Self.unsent(w) == 0, "the last write sends the held bytes with it, at once")
        #expect(Self.arrived(on: r, expected: 2000, within: 2) == 2000, "the last write takes the held bytes with it")

        gw_socket_bio_set_more(bio, 1)
        #expect(write() == 1000)
        #expect(Self.unsent(w) == 1000)
        gw_socket_bio_push(bio)
        #expect(Self.unsent(w) == 0, "a push sends what was held, at once")
        #expect(Self.arrived(on: r, expected: 1000, within: 2) == 1000, "a push sends what was held")
    }

    /// Through TLS on a real socket: a buffer of three records in one flush arrives whole, and a
    /// flush that stops because the peer does not read leaves nothing held back — all that the
    /// session took arrives once the peer reads, with no further write.
    /// A gateway client session (the backend side) and a listener session over a loopback TCP
    /// pair, handshaken; the fixture and the descriptors live as long as the sessions are used.
    struct TLSPair {
        let fixture: HandshakeFixture
        let contexts: TLSServerContexts
        let client: TLSSession, server: TLSSession
        let w: Int32, r: Int32

        init() throws {
            fixture = try HandshakeFixture()
            let (contexts, backend) = try fixture.contexts()
            self.contexts = contexts
            (w, r) = try RecordBatchTests.tcpPair()
            server = try TLSSession(accepting: .socket(r), listener: contexts.listeners[0], tickets: HandshakeFixture.tickets)
            client = try TLSSession(connecting: .socket(w), backend: backend, urlHost: "a.test", session: nil)
            var c = TLSSession.Status.wantWrite, s = TLSSession.Status.wantRead
            for _ in 0..<2000 where c.waiting || s.waiting {
                if c.waiting { c = client.handshake() }
                if s.waiting { s = server.handshake() }
                if c.waiting || s.waiting { usleep(1000) }
            }
            #expect(c == .done(0) && s == .done(0))
        }

        func close() { Glibc.close(w); Glibc.close(r) }

        /// Plaintext bytes the server reads until `expected` came or 3 s passed.
        func serverReads(upTo expected: Int, through input: inout Transport) -> Int {
            var got = 0
            let end = monotonicMicroseconds() + 3_000_000
            while got < expected && monotonicMicroseconds() < end {
                server.noteReadable()
                if case .done(let n) = input.read() { got += n; input.input.consume(n) } else { usleep(1000) }
            }
            return got
        }
    }

    /// `TLSSession.write` marks every record but the last of what it is given: the first call of
    /// a two-record buffer leaves its record held, the call with the rest sends both at once, and
    /// a one-record write is never held.
    @Test func aWriteOfSeveralRecordsHoldsAllButTheLast() throws {
        let t = try TLSPair()
        defer { t.close() }
        var input = Transport(t.server, buffers: BufferPool())
        let bytes = [UInt8](repeating: 4, count: 20_000)
        let first = bytes.withUnsafeBytes { t.client.write($0) }
        #expect(first == .done(TLSSession.maxRecord))
        #expect(Self.unsent(t.w) > TLSSession.maxRecord, "the first record waits for the rest")
        let rest = bytes.withUnsafeBytes { t.client.write(UnsafeRawBufferPointer(rebasing: $0[TLSSession.maxRecord...])) }
        #expect(rest == .done(bytes.count - TLSSession.maxRecord))
        #expect(Self.unsent(t.w) == 0, "the last record sends both")
        #expect(t.serverReads(upTo: bytes.count, through: &input) == bytes.count)

        #expect([UInt8](repeating: 5, count: 100).withUnsafeBytes { t.client.write($0) } == .done(100))
        #expect(Self.unsent(t.w) == 0, "one record: nothing held")
        #expect(t.serverReads(upTo: 100, through: &input) == 100)
    }

    @Test func everyRecordAWriteLoopTookArrives() throws {
        let t = try TLSPair()
        defer { t.close() }
        let w = t.w
        let pool = BufferPool()
        var out = Transport(t.client, buffers: pool)
        var input = Transport(t.server, buffers: pool)
        func readAll(upTo expected: Int) -> Int { t.serverReads(upTo: expected, through: &input) }

        let three = [UInt8](repeating: 2, count: 3 * 16_384 - 100)
        three.withUnsafeBytes { out.output.append($0) }
        var progress = false
        var flushed = out.flush(progress: &progress)
        #expect(flushed && out.output.isEmpty)
        #expect(readAll(upTo: three.count) == three.count)

        // Against a peer that reads nothing, through a send buffer of a few records: the flush
        // stops with most of 8 MiB unsent. (A receive buffer made small too would slow the rest
        // to the kernel's zero-window probes, seconds apart, whatever the sender does.)
        var sendBuffer: Int32 = 64 * 1024
        _ = setsockopt(w, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
        let big = [UInt8](repeating: 3, count: 8 << 20)
        big.withUnsafeBytes { out.output.append($0) }
        flushed = out.flush(progress: &progress)
        #expect(flushed)
        let taken = big.count - out.output.readableCount
        #expect(taken > 0 && taken < big.count, "taken \(taken)")
        #expect(readAll(upTo: taken) == taken)
    }
}
