import Glibc
import Testing
@testable import GatewaySystem

@Suite struct SocketAddressTests {
    /// An address goes through the kernel's generic structure and back whole (what accept and
    /// connect do with it), in a value of 32 bytes, not a sockaddr_storage's 132.
    @Test(arguments: [("127.0.0.1", UInt16(443)), ("::1", 8443), ("2001:db8::7", 1), ("::ffff:10.0.0.9", 65535)])
    func roundTripsThroughTheKernelStructure(_ ip: String, _ port: UInt16) throws {
        let a = try #require(SocketAddress(ip: ip, port: port))
        let b = SocketAddress(storage: a.storage, length: a.length)
        #expect(b.family == a.family && b.length == a.length && b.port == port && b.ipBytes == a.ipBytes)
        #expect(b.description == a.description)
        #expect(Int(a.length) == (ip.contains(":") ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size))
        #expect(MemoryLayout<SocketAddress>.size <= 32)
    }

    /// A listener bound to port 0 reports the port the kernel chose through getsockname.
    @Test func boundAddressComesBackFromTheKernel() throws {
        let fd = try Socket.listen(on: SocketAddress(ip: "127.0.0.1", port: 0)!, reusePort: false, backlog: 1)
        defer { close(fd) }
        let bound = try #require(Socket.localAddress(fd))
        #expect(bound.family == AF_INET && bound.port != 0 && bound.ipBytes == [127, 0, 0, 1])
    }
}
