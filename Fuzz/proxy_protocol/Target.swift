// libFuzzer entry for the PROXY protocol parser (built with -sanitize=fuzzer,address by scripts/fuzz).
// Besides "no crash", it checks the invariants the connection reader relies on: a header never
// claims more bytes than it was given, every strict prefix of a header is still needMore, and
// `needMore` is only ever said of bytes that could all belong to the header.
// Built into one module with Sources/GatewayProxyProtocol by scripts/fuzz: no import.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyProtocol(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch ProxyProtocolParser.parse(bytes) {
    case .header(_, let consumed):
        precondition(consumed > 0 && consumed <= size, "consumed \(consumed) of \(size)")
        for n in [consumed - 1, consumed / 2] where n >= 0 {
            guard case .needMore = ProxyProtocolParser.parse(UnsafeRawBufferPointer(rebasing: bytes[0..<n])) else {
                preconditionFailure("a strict prefix of a header is not needMore")
            }
        }
    case .needMore:
        precondition(size < ProxyProtocolParser.defaultMaxV2Length + 1, "needMore past the limit")
    case .invalid(let why):
        precondition(!why.isEmpty)
    }
    return 0
}
