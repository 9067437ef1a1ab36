// libFuzzer target: the request head parser and the chunked decoder. Properties: no crash
// or sanitizer report, every range inside the buffer, and the same events (heads, bodies,
// the error status and reason) whole, byte by byte and in hash-chosen pieces.

let fuzzLimits = HTTPHeadLimits(maxURISize: 128, maxHeaderSize: 512, maxHeaders: 16)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    checkSegmentation(input) { cuts in
        var parser = HTTPRequestParser(limits: fuzzLimits)
        return segmentedRun(input, cuts: cuts, parseHead: { (b: UnsafeRawBufferPointer) throws(HTTPParseError) -> ParsedHead? in
            guard let h = try parser.parse(b) else { return nil }
            precondition(h.headLength <= b.count && h.headLength <= fuzzLimits.maxHeaderSize, "head length out of bounds")
            for r in [h.method, h.target] + h.headers.flatMap({ [$0.name, $0.value] }) + (h.host.map { [$0] } ?? []) {
                precondition(r.lowerBound >= 0 && r.upperBound <= h.headLength, "range \(r) outside the head")
            }
            precondition(h.target.count <= fuzzLimits.maxURISize && h.headers.count <= fuzzLimits.maxHeaders, "limit not enforced")
            let s = "\(h.method) \(h.target) 1.\(h.versionMinor) \(h.framing) ka=\(h.keepAlive) 100=\(h.expectContinue) up=\(h.upgrade) host=\(String(describing: h.host)) HEAD=\(h.isHEAD) \(fieldsSummary(b, h.headers))"
            return ParsedHead(length: h.headLength, framing: h.framing, summary: s)
        }, resetHead: { parser.reset() })
    }
    return 0
}
