import Glibc

/// An IPv4 or IPv6 socket address, parsed once and kept as the kernel's structure.
public struct SocketAddress: Sendable, CustomStringConvertible {
    /// The sockaddr_in or sockaddr_in6 bytes, in a sockaddr_in6's 28 bytes rather than a
    /// sockaddr_storage's 128: every client connection keeps its peer for its whole life.
    private var raw: sockaddr_in6
    public var length: socklen_t

    /// The address as the kernel's generic structure (for bind and connect).
    public var storage: sockaddr_storage {
        var st = sockaddr_storage()
        withUnsafeMutableBytes(of: &st) { d in withUnsafeBytes(of: raw) { d.copyMemory(from: $0) } }
        return st
    }

    /// An IPv4 or IPv6 address as accept/getsockname/getaddrinfo gave it (at most 28 bytes).
    public init(storage: sockaddr_storage, length: socklen_t) {
        var r = sockaddr_in6()
        withUnsafeMutableBytes(of: &r) { d in
            withUnsafeBytes(of: storage) { d.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<d.count])) }
        }
        raw = r
        self.length = min(length, socklen_t(MemoryLayout<sockaddr_in6>.size))
    }

    /// Numeric IPv4 or IPv6 literal (no brackets) and a port; nil if the text is not an IP literal.
    public init?(ip: String, port: UInt16) {
        var bytes = [UInt8](repeating: 0, count: 16)
        if ip.contains(":") {
            guard inet_pton(AF_INET6, ip, &bytes) == 1 else { return nil }
        } else {
            guard inet_pton(AF_INET, ip, &bytes) == 1 else { return nil }
            bytes.removeLast(12)
        }
        self.init(addressBytes: bytes, port: port)
    }

    /// An address from its 4 (IPv4) or 16 (IPv6) bytes in network order; nil for another length.
    public init?(addressBytes a: [UInt8], port: UInt16) {
        var st = sockaddr_storage()
        if a.count == 4 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: a) }
            withUnsafeBytes(of: sin) { src in withUnsafeMutableBytes(of: &st) { $0.copyMemory(from: src) } }
            self.init(storage: st, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        } else if a.count == 16 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: a) }
            withUnsafeBytes(of: sin6) { src in withUnsafeMutableBytes(of: &st) { $0.copyMemory(from: src) } }
            self.init(storage: st, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
        } else {
            return nil
        }
    }

    public var family: Int32 { Int32(raw.sin6_family) }

    /// The address bytes (4 or 16), for allow/deny matching.
    public var ipBytes: [UInt8] {
        withUnsafeBytes(of: self.raw) { raw in
            if family == AF_INET6 {
                let off = MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_addr)!
                let b = Array(raw[off..<off + 16])
                // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is matched as IPv4.
                if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12..<16]) }
                return b
            }
            let off = MemoryLayout<sockaddr_in>.offset(of: \sockaddr_in.sin_addr)!
            return Array(raw[off..<off + 4])
        }
    }

    public var port: UInt16 {
        withUnsafeBytes(of: self.raw) { raw in
            let off = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_port)!
                                         : MemoryLayout<sockaddr_in>.offset(of: \sockaddr_in.sin_port)!
            return UInt16(bigEndian: raw.load(fromByteOffset: off, as: UInt16.self))
        }
    }

    /// The IP as text (no port, no brackets).
    public var ipString: String {
        var bytes = ipBytes
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let fam = bytes.count == 4 ? AF_INET : AF_INET6
        _ = inet_ntop(fam, &bytes, &out, socklen_t(out.count))
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String {
        ipBytes.count == 16 ? "[\(ipString)]:\(port)" : "\(ipString):\(port)"
    }
}
