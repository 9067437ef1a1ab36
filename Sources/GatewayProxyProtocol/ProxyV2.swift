/// Version 2: a 16-byte binary preamble (signature, version/command, family/transport, length),
/// the addresses, then TLVs. Every length is checked before a byte is read; TLVs are walked
/// (so a truncated one is refused) but their contents are not used.
enum ProxyV2 {
    static func parse(_ b: UnsafeRawBufferPointer, maxLength: Int) -> ProxyProtocolResult {
        let sig = ProxyProtocolParser.v2Signature
        if ProxyProtocolParser.mismatch(b, sig) { return .invalid("not a PROXY protocol header") }
        if b.count > 12 {
            guard b[12] >> 4 == 2 else { return .invalid("v2: unsupported version \(b[12] >> 4)") }
            guard b[12] & 0x0F <= 1 else { return .invalid("v2: unknown command \(b[12] & 0x0F)") }
        }
        guard b.count >= 16 else { return .needMore }
        let length = Int(b[14]) << 8 | Int(b[15])
        let total = 16 + length
        guard total <= maxLength else { return .invalid("v2: header of \(total) bytes over the \(maxLength)-byte limit") }
        guard b.count >= total else { return .needMore }
        let body = UnsafeRawBufferPointer(rebasing: b[16..<total])
        if b[12] & 0x0F == 0 {
            // LOCAL: the sender's own connection; whatever the block holds is skipped.
            return .header(ProxyHeader(version: 2, command: .local, source: nil, destination: nil), consumed: total)
        }
        let addressLength: Int
        var source: ProxyAddress?
        var destination: ProxyAddress?
        switch b[13] {
        case 0x00:
            addressLength = 0          // UNSPEC: no addresses; the peer's is kept
        case 0x11:
            addressLength = 12
            guard body.count >= addressLength else { return .invalid("v2: TCP over IPv4 needs 12 address bytes, got \(body.count)") }
            source = ProxyAddress(bytes: Array(body[0..<4]), port: be16(body, 8))
            destination = ProxyAddress(bytes: Array(body[4..<8]), port: be16(body, 10))
        case 0x21:
            addressLength = 36
            guard body.count >= addressLength else { return .invalid("v2: TCP over IPv6 needs 36 address bytes, got \(body.count)") }
            source = ProxyAddress(bytes: Array(body[0..<16]), port: be16(body, 32))
            destination = ProxyAddress(bytes: Array(body[16..<32]), port: be16(body, 34))
        case 0x31:
            addressLength = 216        // UNIX stream: no IP to use; the peer's is kept
            guard body.count >= addressLength else { return .invalid("v2: UNIX stream needs 216 address bytes, got \(body.count)") }
        case 0x12, 0x22, 0x32:
            return .invalid("v2: a datagram (UDP) transport on a TCP listener")
        default:
            return .invalid("v2: unknown address family/transport 0x\(String(b[13], radix: 16))")
        }
        if let why = checkTLVs(UnsafeRawBufferPointer(rebasing: body[addressLength...])) { return .invalid("v2: \(why)") }
        return .header(ProxyHeader(version: 2, command: .proxy, source: source, destination: destination), consumed: total)
    }

    /// Walks type (1), length (2, big-endian), value; nil when they tile the block exactly.
    static func checkTLVs(_ t: UnsafeRawBufferPointer) -> String? {
        var i = 0
        while i < t.count {
            guard t.count - i >= 3 else { return "truncated TLV header at offset \(i)" }
            let n = Int(t[i + 1]) << 8 | Int(t[i + 2])
            guard t.count - i - 3 >= n else { return "TLV 0x\(String(t[i], radix: 16)) of \(n) bytes overruns the header" }
            i += 3 + n
        }
        return nil
    }

    private static func be16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }
}
