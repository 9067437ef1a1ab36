import Testing
@testable import GatewaySystem

/// Buffer blocks go back to the worker's pool when a buffer empties and come from it when a
/// buffer fills again: the keep-alive path allocates no buffer memory.
@Suite struct BufferPoolTests {
    @Test func anEmptiedBufferGivesItsBlockBackAndTheNextTakesIt() {
        let pool = BufferPool()
        var a = ByteBuffer(pool: pool)
        a.append(Array(repeating: 7, count: 100))
        #expect(pool.spareCount == 0)
        a.consume(100)
        a.releaseIfEmpty()
        #expect(pool.spareCount == 1)
        var b = ByteBuffer(pool: pool)
        b.append(Array(repeating: 1, count: 10))
        #expect(pool.spareCount == 0)
        #expect(b.capacity == BufferPool.blockSize)
    }

    @Test func aGrownBufferTradesItsBlockForTheNextSize() {
        let pool = BufferPool()
        var a = ByteBuffer(pool: pool)
        a.append(Array(repeating: 1, count: 16 * 1024))
        a.append(Array(repeating: 2, count: 300))   // a 16 KiB body and its head
        #expect(a.capacity == 32 * 1024)
        #expect(pool.spareCount == 1)               // the 16 KiB block went back
        #expect(Array(a.readable.prefix(1)) == [1] && Array(a.readable.suffix(1)) == [2])
        a.clear()
        a.releaseIfEmpty()
        #expect(pool.spareCount == 2)
        var b = ByteBuffer(pool: pool)
        b.append(Array(repeating: 3, count: 20 * 1024))   // needs 32 KiB at once: the spare one
        #expect(b.capacity == 32 * 1024)
        #expect(pool.spareCount == 1)
    }

    /// The inlined literal append: nothing for "" (an empty buffer takes no block), and a
    /// literal that crosses the block's end grows the buffer with every byte in order.
    @Test func literalsAppendWholeAcrossABlockBoundary() {
        let pool = BufferPool()
        var a = ByteBuffer(pool: pool)
        a.append("")
        #expect(a.capacity == 0 && a.isEmpty)
        a.append(Array(repeating: 0x2E, count: BufferPool.blockSize - 3))
        a.append("\r\nX-Forwarded-Proto: https\r\n")   // 28 bytes, 3 of them still fit
        #expect(a.capacity == 2 * BufferPool.blockSize)
        #expect(Array(a.readable.suffix(28)) == Array("\r\nX-Forwarded-Proto: https\r\n".utf8))
        #expect(a.readableCount == BufferPool.blockSize - 3 + 28)
    }

    @Test func sizesOutsideTheClassesAreNotKept() {
        let pool = BufferPool()
        do {
            var a = ByteBuffer(pool: pool)
            a.append(Array(repeating: 1, count: 300 * 1024))   // 512 KiB: beyond the largest class
            #expect(a.capacity == 512 * 1024)
        }
        #expect(pool.spareCount == 0)   // allocated and freed outside the pool
        #expect(BufferPool.sizeClass(512 * 1024) == nil && BufferPool.sizeClass(16 * 1024) == 0)
    }
}
