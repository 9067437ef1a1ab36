import Glibc

/// An IPv4 or IPv6 socket address, parsed once and kept as the kernel's structure.
public struct SocketAddress: Sendable, CustomStringConvertible {
    public var storage: sockaddr_storage
    public var length: socklen_t

    public init(storage: sockaddr_storage, length: socklen_t) { self.storage = storage; self.length = length }

    /// Numeric IPv4 or IPv6 literal (no brackets) and a port; nil if the text is not an IP literal.
    public init?(ip: String, port: UInt16) {
        var st = sockaddr_storage()
        if ip.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, ip, &a.sin6_addr) == 1 else { return nil }
            withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &st) { $0.copyMemory(from: src) } }
            self.init(storage: st, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, ip, &a.sin_addr) == 1 else { return nil }
            withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &st) { $0.copyMemory(from: src) } }
            self.init(storage: st, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }

    public var family: Int32 { Int32(storage.ss_family) }

    /// The address bytes (4 or 16), for allow/deny matching.
    public var ipBytes: [UInt8] {
        withUnsafeBytes(of: storage) { raw in
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
        withUnsafeBytes(of: storage) { raw in
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
