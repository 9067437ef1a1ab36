// libFuzzer target: the backend response parser and the chunked decoder, with the same
// segmentation property as the request target. A hash bit of the input says whether the
// request was HEAD (no body then).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let wasHEAD = input.reduce(0) { $0 &+ $1 } & 0x40 != 0
    checkSegmentation(input) { cuts in
        var parser = HTTPResponseParser(maxHeadSize: 1024)
        return segmentedRun(input, cuts: cuts, parseHead: { (b: UnsafeRawBufferPointer) throws(HTTPParseError) -> ParsedHead? in
            guard let h = try parser.parse(b, requestWasHEAD: wasHEAD) else { return nil }
            precondition(h.headLength <= b.count && h.headLength <= 1024, "head length out of bounds")
            precondition((100...599).contains(h.status), "status \(h.status) out of range")
            for f in h.headers { precondition(f.name.upperBound <= h.headLength && f.value.upperBound <= h.headLength, "field outside the head") }
            if h.framing == .untilClose { precondition(!h.keepAlive, "keep-alive on a body framed by close") }
            let s = "\(h.status) 1.\(h.versionMinor) \(h.framing) ka=\(h.keepAlive) \(fieldsSummary(b, h.headers))"
            return ParsedHead(length: h.headLength, framing: h.framing, summary: s)
        }, resetHead: { parser.reset() })
    }
    return 0
}
