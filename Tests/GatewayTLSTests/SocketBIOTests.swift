import Glibc
import Testing
import COpenSSL
import CGatewayShims

/// The gateway's socket BIO on a real socket pair: a read that returns fewer bytes than asked
/// for says the socket is drained (what lets TLSSession skip the read that would find EAGAIN);
/// a full read does not, and EAGAIN does.
@Suite struct SocketBIOTests {
    @Test func shortReadsAndEAGAINMarkTheSocketDrainedFullReadsDoNot() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let bio = try #require(gw_socket_bio_new(fds[0]))
        defer { BIO_free(bio) }
        var buf = [UInt8](repeating: 0, count: 64)
        func send(_ n: Int) { _ = [UInt8](repeating: 7, count: n).withUnsafeBytes { write(fds[1], $0.baseAddress, n) } }
        func read(_ n: Int32) -> Int32 {
            gw_socket_bio_clear_drained(bio)
            return buf.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, n) }
        }

        send(10)
        #expect(read(64) == 10 && gw_socket_bio_drained(bio) == 1, "10 of 64: nothing more is there")
        send(64)
        #expect(read(32) == 32 && gw_socket_bio_drained(bio) == 0, "as much as asked: there may be more")
        #expect(read(32) == 32 && gw_socket_bio_drained(bio) == 0)
        #expect(read(32) == -1 && BIO_test_flags(bio, BIO_FLAGS_SHOULD_RETRY) != 0 && gw_socket_bio_drained(bio) == 1, "EAGAIN")
        #expect(buf.withUnsafeBytes { BIO_write(bio, $0.baseAddress, 5) } == 5)
        var got = [UInt8](repeating: 0, count: 8)
        #expect(got.withUnsafeMutableBytes { Glibc.read(fds[1], $0.baseAddress, 8) } == 5, "writes reach the socket")
    }
}
