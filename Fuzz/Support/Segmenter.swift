// Shared by the HTTP fuzz targets: feeds one input to a parser the way the proxy does (bytes
// arrive in pieces, the parser sees everything buffered since the head began, bodies are
// consumed as they come) and records what happened. Run twice, whole and in pieces, the two
// records must be equal: a verdict that depends on segmentation is a bug (issue #12).

/// What the proxy learns from a head: its length, how its body is framed, a summary to compare.
struct ParsedHead {
    var length: Int
    var framing: BodyFraming
    var summary: String
}

/// Runs `parseHead` then the body, request after request, over `input` delivered as growing
/// prefixes ending at `cuts`. Returns the events; the first error ends the run.
func segmentedRun(_ input: [UInt8], cuts: [Int], maxMessages: Int = 4,
                  parseHead: (UnsafeRawBufferPointer) throws(HTTPParseError) -> ParsedHead?,
                  resetHead: () -> Void) -> [String] {
    enum State { case head, fixed(total: Int, left: Int), chunked(ChunkedDecoder, UInt64), rest }
    var events: [String] = []
    var state = State.head
    var pos = 0
    var messages = 0
    input.withUnsafeBytes { all in
        for received in cuts + [input.count] where received > pos {
            progress: while true {
                let slice = UnsafeRawBufferPointer(rebasing: all[pos..<received])
                switch state {
                case .head:
                    guard messages < maxMessages, !slice.isEmpty else { break progress }
                    do throws(HTTPParseError) {
                        guard let h = try parseHead(slice) else { break progress }
                        events.append("head \(h.summary)")
                        pos += h.length
                        messages += 1
                        resetHead()
                        switch h.framing {
                        case .none: state = .head
                        case .contentLength(let n): state = .fixed(total: n, left: n)
                        case .chunked: state = .chunked(ChunkedDecoder(), 0xcbf2_9ce4_8422_2325)
                        case .untilClose: state = .rest
                        }
                    } catch {
                        events.append("error \(error.status) \(error.reason)")
                        return
                    }
                case .fixed(let total, let n):
                    let take = min(n, slice.count)
                    pos += take
                    if take < n { state = .fixed(total: total, left: n - take); break progress }
                    events.append("body \(total)")
                    state = .head
                case .chunked(var decoder, var hash):
                    do throws(HTTPParseError) {
                        let r = try decoder.decode(slice) { range in
                            for b in slice[range] { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
                        }
                        precondition(r.consumed <= slice.count, "chunked decoder consumed more than it was given")
                        pos += r.consumed
                        if r.done { events.append("chunked \(hash)"); state = .head; continue }
                        precondition(r.consumed == slice.count, "chunked decoder left bytes before its end")
                        state = .chunked(decoder, hash)
                        break progress
                    } catch {
                        events.append("chunk error \(error.status) \(error.reason)")
                        return
                    }
                case .rest:
                    pos = received
                    break progress
                }
            }
        }
        events.append("end at \(pos)")
    }
    return events
}

/// Piece boundaries chosen from the input itself (a hash of it), so a crash reproduces from the file alone.
func cutsFor(_ input: [UInt8], variant: UInt64) -> [Int] {
    guard input.count > 1 else { return [] }
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ variant
    for b in input.prefix(64) { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    var cuts: [Int] = []
    var at = 0
    while true {
        h ^= h >> 29; h &*= 0xBF58_476D_1CE4_E5B9; h ^= h >> 32
        at += 1 + Int(h % UInt64(min(input.count, 37)))
        guard at < input.count else { return cuts }
        cuts.append(at)
    }
}

/// Whole, byte by byte, and two hash-chosen segmentations must give the same events.
func checkSegmentation(_ input: [UInt8], _ run: ([Int]) -> [String]) {
    let whole = run([])
    for (name, cuts) in [("bytewise", Array(1..<max(1, input.count))), ("cuts1", cutsFor(input, variant: 1)),
                         ("cuts2", cutsFor(input, variant: 2))] {
        let split = run(cuts)
        if split != whole {
            fatalError("segmentation changed the verdict (\(name), cuts \(cuts.prefix(20))):\n whole: \(whole)\n split: \(split)")
        }
    }
}

func fieldsSummary(_ b: UnsafeRawBufferPointer, _ fields: HeadFields) -> String {
    fields.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
}
