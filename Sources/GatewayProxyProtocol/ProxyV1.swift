/// Version 1: one text line, `PROXY TCP4|TCP6|UNKNOWN SRC DST SPORT DPORT\r\n`, at most 107 bytes.
/// Strict: single spaces, canonical decimal ports, addresses in their usual text forms.
enum ProxyV1 {
    static func parse(_ b: UnsafeRawBufferPointer) -> ProxyProtocolResult {
        let prefix = ProxyProtocolParser.v1Prefix
        if ProxyProtocolParser.mismatch(b, prefix) { return .invalid("not a PROXY protocol header") }
        // Find the end of the line within the limit; a CR must be followed by LF.
        var end = -1
        let limit = min(b.count, ProxyProtocolParser.maxV1Length)
        var i = 0
        while i < limit {
            let c = b[i]
            if c == 0x0D {
                guard i + 1 < b.count else { return prefixValid(b, upTo: i) }
                guard b[i + 1] == 0x0A else { return .invalid("v1: CR not followed by LF") }
                end = i
                break
            }
            if c == 0x0A { return .invalid("v1: LF without CR") }
            if c < 0x20 || c > 0x7E { return .invalid("v1: non-printable byte in the header line") }
            i += 1
        }
        if end < 0 {
            if b.count >= ProxyProtocolParser.maxV1Length { return .invalid("v1: no CRLF within 107 bytes") }
            return prefixValid(b, upTo: b.count)
        }
        let line = UnsafeRawBufferPointer(rebasing: b[prefix.count..<end])
        switch fields(line) {
        case .failure(let f): return .invalid("v1: \(f.why)")
        case .success(let h): return .header(h, consumed: end + 2)
        }
    }

    /// An incomplete line: still a valid beginning? (A wrong protocol word fails early.)
    private static func prefixValid(_ b: UnsafeRawBufferPointer, upTo n: Int) -> ProxyProtocolResult {
        let start = ProxyProtocolParser.v1Prefix.count
        guard n > start else { return .needMore }
        let word = UnsafeRawBufferPointer(rebasing: b[start..<n])
        for proto in ["TCP4 ", "TCP6 ", "UNKNOWN"] {
            let p = Array(proto.utf8)
            if !ProxyProtocolParser.mismatch(word, p) { return .needMore }
        }
        return .invalid("v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)")
    }

    private struct Failure: Error { let why: String; init(_ w: String) { why = w } }

    private static func fields(_ line: UnsafeRawBufferPointer) -> Result<ProxyHeader, Failure> {
        var parts: [UnsafeRawBufferPointer] = []
        var start = 0
        for i in 0...line.count {
            if i == line.count || line[i] == 0x20 {
                parts.append(UnsafeRawBufferPointer(rebasing: line[start..<i]))
                start = i + 1
            }
        }
        guard let proto = parts.first else { return .failure(Failure("empty line")) }
        if equals(proto, "UNKNOWN") {
            // The sender does not know the addresses: the rest of the line is ignored, the peer's address kept.
            return .success(ProxyHeader(version: 1, command: .proxy, source: nil, destination: nil))
        }
        let v6: Bool
        if equals(proto, "TCP4") { v6 = false } else if equals(proto, "TCP6") { v6 = true } else {
            return .failure(Failure("unknown protocol (expected TCP4, TCP6 or UNKNOWN)"))
        }
        guard parts.count == 5 else { return .failure(Failure("expected 5 fields separated by single spaces, got \(parts.count)")) }
        guard let src = v6 ? IPText.v6(parts[1]) : IPText.v4(parts[1]) else { return .failure(Failure("bad source address")) }
        guard let dst = v6 ? IPText.v6(parts[2]) : IPText.v4(parts[2]) else { return .failure(Failure("bad destination address")) }
        guard let sport = port(parts[3]) else { return .failure(Failure("bad source port")) }
        guard let dport = port(parts[4]) else { return .failure(Failure("bad destination port")) }
        return .success(ProxyHeader(version: 1, command: .proxy, source: ProxyAddress(bytes: src, port: sport),
                                    destination: ProxyAddress(bytes: dst, port: dport)))
    }

    /// 0...65535 in decimal, no sign, no leading zero.
    private static func port(_ b: UnsafeRawBufferPointer) -> UInt16? {
        guard (1...5).contains(b.count), !(b.count > 1 && b[0] == UInt8(ascii: "0")) else { return nil }
        var v = 0
        for c in b {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + Int(c - UInt8(ascii: "0"))
        }
        return v <= 65535 ? UInt16(v) : nil
    }

    private static func equals(_ b: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        b.count == s.utf8CodeUnitCount && (0..<b.count).allSatisfy { b[$0] == s.utf8Start[$0] }
    }
}
