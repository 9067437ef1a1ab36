import Glibc

struct EchoOptions {
    var listen = ""
    var host = ""
    var port: UInt16 = 0
    var cert = ""
    var key = ""
    var clientCA: String?
    var clientAuthRequired = true
    var minVersion: Int32 = 0x0303
    var maxVersion: Int32 = 0x0304
    var name = "echo"
    /// What `/healthz` answers (tests of active health checks).
    var healthStatus = 200

    static func parse(_ args: [String]) -> EchoOptions? {
        var o = EchoOptions()
        var i = 0
        while i + 1 < args.count {
            let v = args[i + 1]
            switch args[i] {
            case "--listen": o.listen = v
            case "--cert": o.cert = v
            case "--key": o.key = v
            case "--client-ca": o.clientCA = v
            case "--client-auth":
                guard v == "optional" || v == "required" else { return nil }
                o.clientAuthRequired = v == "required"
            case "--min-version": guard let x = version(v) else { return nil }; o.minVersion = x
            case "--max-version": guard let x = version(v) else { return nil }; o.maxVersion = x
            case "--name": o.name = v
            case "--health-status": guard let x = Int(v), (200...599).contains(x) else { return nil }; o.healthStatus = x
            default: return nil
            }
            i += 2
        }
        guard i == args.count, !o.cert.isEmpty, !o.key.isEmpty, let colon = o.listen.lastIndex(of: ":"),
              let port = UInt16(o.listen[o.listen.index(after: colon)...]) else { return nil }
        var host = String(o.listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        o.host = host
        o.port = port
        return o
    }

    static func version(_ s: String) -> Int32? {
        ["1.0": 0x0301, "1": 0x0301, "1.1": 0x0302, "1.2": 0x0303, "1.3": 0x0304][s]
    }
}

/// A blocking listening socket on ADDR:PORT (IPv4 or IPv6 literal).
func listenSocket(_ host: String, _ port: UInt16) -> Int32 {
    var v6 = in6_addr(), v4 = in_addr()
    let isV6 = inet_pton(AF_INET6, host, &v6) == 1
    guard isV6 || inet_pton(AF_INET, host, &v4) == 1 else { fail("not an IP address: \(host)") }
    let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let rc: Int32
    if isV6 {
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6); a.sin6_port = port.bigEndian; a.sin6_addr = v6
        rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    } else {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET); a.sin_port = port.bigEndian; a.sin_addr = v4
        rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }
    guard rc == 0, Glibc.listen(fd, 1024) == 0 else { fail("cannot listen on \(host):\(port): \(String(cString: strerror(errno)))") }
    return fd
}
