import Testing
@testable import GatewaySystem

/// StreamMap against Dictionary under random inserts, replacements and removals (the deletion
/// shifts clusters back, which is where open addressing goes wrong).
@Suite struct StreamMapTests {
    @Test func agreesWithDictionary() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<50 {
            var map = StreamMap<Int>()
            var reference: [Int32: Int] = [:]
            // Consecutive odd ids (clients' streams), a few far ones, and many collisions on small tables.
            let pool: [Int32] = (0..<200).map { Int32(2 * $0 + 1) } + [Int32.max, 1 << 20 | 1, 65537, 3 + 64 * 1024]
            for step in 0..<2000 {
                let id = pool[Int.random(in: 0..<(round % 2 == 0 ? 40 : pool.count), using: &rng)]
                if Bool.random(using: &rng) {
                    map[id] = step; reference[id] = step
                } else {
                    #expect(map.removeValue(forKey: id) == reference.removeValue(forKey: id))
                }
                #expect(map.count == reference.count)
            }
            for id in pool { #expect(map[id] == reference[id] && map.contains(id) == (reference[id] != nil), "id \(id)") }
            #expect(map.values.sorted() == reference.values.sorted())
        }
    }

    @Test func emptyHoldsNothingAndZeroIsNoKey() {
        var map = StreamMap<String>()
        #expect(map.isEmpty && map[1] == nil && map.removeValue(forKey: 1) == nil)
        map[1] = "a"; map[3] = "b"
        map[1] = nil; map[3] = nil
        #expect(map.isEmpty && map.values.isEmpty)
    }

    /// Emptied, a map drops a table past `keptSlots` (an idle client connection holds little)
    /// and keeps one within it (a backend connection's streams drain to zero and come back).
    @Test func emptiedTableIsKeptUpToKeptSlots() {
        var small = StreamMap<Int>(), large = StreamMap<Int>(keptSlots: 1024)
        for id in stride(from: Int32(1), through: 401, by: 2) { small[id] = 1; large[id] = 1 }
        #expect(small.keys.count > 64 && large.keys.count > 64)
        for id in stride(from: Int32(1), through: 401, by: 2) { small[id] = nil; large[id] = nil }
        #expect(small.isEmpty && small.keys.isEmpty)
        #expect(large.isEmpty && large.keys.count > 64 && large.keys.count <= 1024)
        large[7] = 3
        #expect(large[7] == 3 && large.count == 1)
    }

    /// A client connection's table keeps room for all the streams it may open (128 by default):
    /// emptied after each run of streams, it is not regrown from nothing.
    @Test func roomForAConnectionsStreamsIsKept() {
        #expect(StreamMap<Int>(keepingRoomFor: 10).keptSlots == 64)
        #expect(StreamMap<Int>(keepingRoomFor: 128).keptSlots == 256)
        #expect(StreamMap<Int>(keepingRoomFor: 1000).keptSlots == 2048)
        var map = StreamMap<Int>(keepingRoomFor: 128)
        for id in stride(from: Int32(1), through: 255, by: 2) { map[id] = 1 }
        #expect(map.count == 128 && map.keys.count == 256)
        for id in stride(from: Int32(1), through: 255, by: 2) { map[id] = nil }
        #expect(map.isEmpty && map.keys.count == 256)
        map.removeAll()
        #expect(map.keys.isEmpty && map.keptSlots == 256)
    }
}
