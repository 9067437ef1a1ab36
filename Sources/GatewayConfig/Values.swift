// Argument text -> typed values. Pure functions: nil (or a reason) for a bad
// value; the rule tables turn that into a diagnostic naming what is accepted.

import Glibc

/// Why a value was refused, in words for the diagnostic.
struct Invalid: Error, Equatable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

enum Values {
    /// `250ms 5s 2m 1h 1d` in milliseconds; a bare number is seconds.
    static func durationMs(_ text: String) -> Int? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let n = Int(digits) else { return nil }
        let factor: Int
        switch text.dropFirst(digits.count) {
        case "ms": factor = 1
        case "", "s": factor = 1_000
        case "m": factor = 60_000
        case "h": factor = 3_600_000
        case "d": factor = 86_400_000
        default: return nil
        }
        let (ms, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow || ms > Int(Int32.max) ? nil : ms
    }

    /// `512 16k 1m 1g` in bytes (binary multiples, either case).
    static func size(_ text: String) -> Int? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let n = Int(digits) else { return nil }
        let factor: Int
        switch text.dropFirst(digits.count).lowercased() {
        case "": factor = 1
        case "k": factor = 1 << 10
        case "m": factor = 1 << 20
        case "g": factor = 1 << 30
        default: return nil
        }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow ? nil : bytes
    }

    static func integer(_ text: String, in range: ClosedRange<Int>) -> Int? {
        guard text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(text), range.contains(n) else { return nil }
        return n
    }

    static func flag(_ text: String) -> Bool? {
        switch text {
        case "on": true
        case "off": false
        default: nil
        }
    }

    /// `TLSv1.2`, `TLS1.2`, `1.2` (any case); `TLSv1`, `1` and `1.0` are TLS 1.0.
    static func tlsVersion(_ text: String) -> TLSVersion? {
        var rest = Substring(text.lowercased())
        if rest.hasPrefix("tlsv") { rest = rest.dropFirst(4) } else if rest.hasPrefix("tls") { rest = rest.dropFirst(3) }
        switch rest {
        case "1", "1.0": return .tls1_0
        case "1.1": return .tls1_1
        case "1.2": return .tls1_2
        case "1.3": return .tls1_3
        default: return nil
        }
    }

    /// The 4 or 16 bytes of a numeric IPv4 or IPv6 address (no brackets).
    static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128). Brackets around IPv6 are tolerated.
    static func network(_ text: String) -> IPNetwork? {
        var text = Substring(text)
        var bitsText: Substring?
        if let slash = text.firstIndex(of: "/") {
            bitsText = text[text.index(after: slash)...]
            text = text[..<slash]
        }
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        guard let bytes = ipBytes(String(text)) else { return nil }
        let maxBits = bytes.count * 8
        guard let bitsText else { return IPNetwork(address: bytes, bits: maxBits) }
        guard let bits = integer(String(bitsText), in: 0...maxBits) else { return nil }
        return IPNetwork(address: bytes, bits: bits)
    }

    /// `ADDR:PORT` for `listen` and `admin`: IPv4 literal, `[v6]`, or `*` (= 0.0.0.0).
    /// The address comes back numeric and without brackets.
    static func listenAddress(_ text: String) -> (address: String, port: UInt16)? {
        guard let colon = text.lastIndex(of: ":"),
              let port = integer(String(text[text.index(after: colon)...]), in: 1...65535) else { return nil }
        var host = String(text[..<colon])
        if host == "*" { return ("0.0.0.0", UInt16(port)) }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard let bytes = ipBytes(host), bytes.count == 16 else { return nil }
        } else {
            guard let bytes = ipBytes(host), bytes.count == 4 else { return nil }
        }
        return (host, UInt16(port))
    }

    /// A backend `server` URL: `https://HOST[:PORT]`, IPv6 in brackets, default port 443, no path.
    /// The caller has already checked the scheme; this reads what follows it.
    static func backendAuthority(_ authority: Substring) -> Result<(host: String, port: UInt16), Invalid> {
        var rest = authority
        if rest.hasSuffix("/") { rest = rest.dropLast() }   // `https://a:1/` is still no path
        if rest.contains(where: { "/?#@".contains($0) }) {
            return .failure(Invalid("must be https://HOST[:PORT] without path, query or user"))
        }
        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return .failure(Invalid("unclosed \"[\" in IPv6 address")) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return .failure(Invalid("unexpected text after \"]\"")) }
                portText = after.dropFirst()
            }
            guard let bytes = ipBytes(String(host)), bytes.count == 16 else {
                return .failure(Invalid("invalid IPv6 address \"\(host)\""))
            }
        } else {
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) else {
                return .failure(Invalid("invalid host \"\(host)\""))
            }
        }
        guard let portText else { return .success((String(host), 443)) }
        guard let port = integer(String(portText), in: 1...65535) else {
            return .failure(Invalid("invalid port \"\(portText)\" (expected 1-65535)"))
        }
        return .success((String(host), UInt16(port)))
    }

    /// A `host` or `default_host` name: lower-cased, trailing dot dropped;
    /// `*` only as the whole first label (`*.example.test`).
    static func hostName(_ text: String) -> Result<String, Invalid> {
        var name = text.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.utf8.count <= 253, labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else {
            return .failure(Invalid("invalid host name \"\(text)\""))
        }
        for (i, label) in labels.enumerated() {
            if label == "*" {
                guard i == 0, labels.count >= 2 else {
                    return .failure(Invalid("invalid host name \"\(text)\": \"*\" is allowed only as the whole first label (*.example.test)"))
                }
                continue
            }
            guard label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                return .failure(Invalid("invalid host name \"\(text)\"" + (label.contains("*")
                    ? ": \"*\" is allowed only as the whole first label (*.example.test)" : "")))
            }
        }
        return .success(name)
    }
}
