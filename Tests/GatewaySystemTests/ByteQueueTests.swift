import Testing
@testable import GatewaySystem

/// A stream's outgoing body: buffers handed over whole are queued by swapping memory, bytes come
/// out in the order they went in across places, and drained places give their blocks back.
@Suite struct ByteQueueTests {
    private func filled(_ pool: BufferPool, _ byte: UInt8, _ count: Int) -> ByteBuffer {
        var b = ByteBuffer(pool: pool)
        b.append(Array(repeating: byte, count: count))
        return b
    }

    private func drained(_ q: inout ByteQueue) -> [UInt8] {
        var sink = ByteBuffer()
        q.move(q.readableCount, into: &sink)
        return Array(sink.readable)
    }

    @Test func aBufferHandedOverMovesWithoutACopy() {
        let pool = BufferPool()
        var q = ByteQueue(pool: pool)
        var input = filled(pool, 1, 100)
        let memory = input.base
        q.take(&input)
        #expect(input.isEmpty && input.base != memory)   // the input got the queue's empty place
        #expect(q.readableCount == 100)
        var sink = ByteBuffer()
        q.move(40, into: &sink)
        #expect(Array(sink.readable) == Array(repeating: 1, count: 40) && q.readableCount == 60)
    }

    @Test func bytesComeOutInOrderAcrossPlacesAndAFullQueueCopies() {
        let pool = BufferPool()
        var q = ByteQueue(pool: pool)
        for byte in UInt8(1)...4 {
            var b = filled(pool, byte, 10)
            q.take(&b)
        }
        let full = q.isFull
        #expect(full)
        [UInt8](repeating: 5, count: 5).withUnsafeBytes { q.append($0) }   // into the last place
        var last = filled(pool, 6, 10)
        let memory = last.base
        q.take(&last)                                   // no place free: copied, left empty
        #expect(last.isEmpty && last.base == memory)
        let expected = (1...4).flatMap { Array(repeating: UInt8($0), count: 10) } + Array(repeating: 5, count: 5) + Array(repeating: 6, count: 10)
        #expect(q.readableCount == expected.count)
        var out = [UInt8](repeating: 0, count: 25)
        out.withUnsafeMutableBytes { q.move(25, to: $0.baseAddress!) }   // across three places
        #expect(out == Array(expected.prefix(25)))
        let fullAfter = q.isFull
        #expect(!fullAfter)
        #expect(drained(&q) == Array(expected.dropFirst(25)))
        let empty = q.isEmpty
        #expect(empty)
    }

    @Test func drainedPlacesGiveTheirBlocksBack() {
        let pool = BufferPool()
        var q = ByteQueue(pool: pool)
        var a = filled(pool, 1, 10), b = filled(pool, 2, 10)
        q.take(&a); q.take(&b)
        a.releaseIfEmpty(); b.releaseIfEmpty()
        #expect(pool.spareCount == 0)
        #expect(drained(&q) == Array(repeating: 1, count: 10) + Array(repeating: 2, count: 10))
        #expect(pool.spareCount == 2)
    }

    @Test func removeAllEmptiesEveryPlaceAndTheQueueWorksOn() {
        let pool = BufferPool()
        var q = ByteQueue(pool: pool)
        for byte in UInt8(1)...3 { var b = filled(pool, byte, 10); q.take(&b); b.releaseIfEmpty() }
        q.removeAll()
        let empty = q.isEmpty
        #expect(empty && pool.spareCount == 3)
        var b = filled(pool, 9, 4)
        q.take(&b)
        #expect(drained(&q) == [9, 9, 9, 9])
    }

    @Test func aBufferOfAnotherPoolIsCopied() {
        var q = ByteQueue(pool: BufferPool())
        var other = ByteBuffer()
        other.append([7, 8, 9])
        let memory = other.base
        q.take(&other)
        #expect(other.isEmpty && other.base == memory)
        #expect(drained(&q) == [7, 8, 9])
    }
}
