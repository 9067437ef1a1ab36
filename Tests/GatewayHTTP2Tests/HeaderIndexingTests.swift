// How the backend side encodes request heads (HTTP2SessionSubmit.indexFlags): fields that repeat
// go into HPACK's dynamic table, so the next request sends them as indices; x-request-id and
// traceparent, new on every request, are literals never indexed. Read back with nghttp2's own
// inflater, which reports the representation as NGHTTP2_NV_FLAG_NO_INDEX.
import CNGHTTP2
import Testing
import GatewayHTTP
@testable import GatewayHTTP2

@Suite struct HeaderIndexing {
    /// The fields of one header block, with whether each came as a never-indexed literal.
    func inflate(_ inflater: OpaquePointer?, _ block: [UInt8]) -> [(name: String, value: String, neverIndexed: Bool)] {
        var out: [(String, String, Bool)] = []
        var at = 0
        while true {
            var nv = nghttp2_nv()
            var flags: Int32 = 0
            let n = block.withUnsafeBufferPointer {
                nghttp2_hd_inflate_hd2(inflater, &nv, &flags, $0.baseAddress! + at, $0.count - at, 1)
            }
            #expect(n >= 0, "nghttp2 could not decode the block")
            if n < 0 { return out }
            at += n
            if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                out.append((String(decoding: UnsafeBufferPointer(start: nv.name, count: nv.namelen), as: UTF8.self),
                            String(decoding: UnsafeBufferPointer(start: nv.value, count: nv.valuelen), as: UTF8.self),
                            nv.flags & UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) != 0))
            }
            if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 { break }
        }
        nghttp2_hd_inflate_end_headers(inflater)
        return out
    }

    @Test func repeatedFieldsIndexedPerRequestValuesNever() throws {
        let p = try ClientPair()
        let ids = ["7d0c4a2e-8f51-4f0e-9a57-3c1b2d4e5f60", "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b"]
        let traces = ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
        for i in 0..<2 {
            _ = try p.client.request(method: "GET", authority: "api.test", path: "/ok",
                                     headers: fields([("user-agent", "h2load nghttp2/1.52.0"), ("x-forwarded-for", "127.0.0.1"),
                                                      ("x-forwarded-proto", "https"), ("x-request-id", ids[i]),
                                                      ("traceparent", traces[i])]),
                                     endStream: true)
            p.pump()
        }
        let blocks = p.clientFrames.filter { $0.type == 1 }.map(\.payload)   // HEADERS, no padding or priority
        try #require(blocks.count == 2)
        var inflater: OpaquePointer?
        try #require(nghttp2_hd_inflate_new(&inflater) == 0)
        defer { nghttp2_hd_inflate_del(inflater) }
        for (i, block) in blocks.enumerated() {
            let got = inflate(inflater, block)
            #expect(got.map(\.name) == [":method", ":scheme", ":authority", ":path", "user-agent", "x-forwarded-for",
                                        "x-forwarded-proto", "x-request-id", "traceparent"])
            #expect(got.first { $0.name == "x-request-id" }?.value == ids[i])
            #expect(got.first { $0.name == "traceparent" }?.value == traces[i])
            #expect(got.filter(\.neverIndexed).map(\.name) == ["x-request-id", "traceparent"])
        }
        // The second head: every repeated field an index into the table the first one filled;
        // what is left is the two new values (Huffman-coded, under their full length).
        let unique = ids[1].utf8.count + traces[1].utf8.count
        #expect(blocks[1].count < blocks[0].count - 30, "\(blocks[0].count) -> \(blocks[1].count) bytes")
        #expect(blocks[1].count < unique + 16, "\(blocks[1].count) bytes for \(unique) bytes of new values")
    }
}

/// The word-at-a-time lower-casing of field names (HTTP2SessionSubmit.lowercased) against the
/// byte rule, for every byte value in every position of the word.
@Suite struct NameLowercasing {
    @Test func everyByteInEveryPositionAsTheByteRule() {
        let filler: [UInt8] = Array("aZ-0x~Q_".utf8)
        for position in 0..<8 {
            for b in 0...255 {
                var bytes = filler
                bytes[position] = UInt8(b)
                let w = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let got = withUnsafeBytes(of: asciiLowercased(w)) { Array($0) }
                let want = bytes.map { $0 &- 65 < 26 ? $0 | 0x20 : $0 }
                #expect(got == want, "byte \(b) at \(position)")
            }
        }
    }

    @Test func mixedCaseNamesReachNghttp2LowerCased() throws {
        let p = try ClientPair()
        let long = "X-Forwarded-For-Some-Long-Name-Of-37b"
        _ = try p.client.request(method: "GET", authority: "a", path: "/",
                                 headers: fields([(long, "1"), ("Accept", "2"), ("tE", "trailers")]), endStream: true)
        p.pump()
        let (_, head) = try #require(requests(p.serverEvents).first)
        #expect(pairs(head.fields) == ["\(long.lowercased())=1", "accept=2", "te=trailers"])
    }

    /// Every name length from 1 to 20 (bytes, a four-byte pair, words with an overlapping last one).
    @Test func namesOfEveryLengthReachNghttp2LowerCased() throws {
        let p = try ClientPair()
        let names = (1...20).map { n in String("XyZ-AbC-dEf-GhI-jKl-MnO".prefix(n)) }.filter { !$0.hasSuffix("-") }
        _ = try p.client.request(method: "GET", authority: "a", path: "/",
                                 headers: fields(names.map { ($0, "v") }), endStream: true)
        p.pump()
        let (_, head) = try #require(requests(p.serverEvents).first)
        #expect(pairs(head.fields) == names.map { "\($0.lowercased())=v" })
    }
}
