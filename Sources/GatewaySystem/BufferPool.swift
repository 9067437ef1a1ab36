import Glibc

/// Buffer blocks of one event loop thread. A connection's buffers hold memory only while
/// they hold bytes (an idle keep-alive connection owns none), so without a pool every
/// request would allocate and free its blocks. 16 KiB blocks (what every buffer starts
/// with) come from a slab of this worker's own, mapped once: reusing them costs nothing and
/// they do not sit among malloc's chunks, where long-lived pooled blocks pinned the heap
/// (scripts/soak: +0.7 MB of RSS after a load peak). Untouched slab pages cost no memory.
/// Larger blocks (a 16 KiB body and its head in one buffer) keep a few spares from malloc.
/// Owned and used by one loop thread only: no locks.
public final class BufferPool {
    /// The smallest block: what a buffer starts with.
    public static let blockSize = 16 * 1024
    static let classes = 3
    /// Address space for this many 16 KiB blocks (16 MiB); past it, blocks come from malloc.
    private let slabBlocks: Int
    private let slab: UnsafeMutableRawPointer?
    /// Slab blocks handed out at least once; the ones below it are in use or on the free list.
    private var slabUsed = 0
    /// Returned slab blocks, by index: a stack with room for every block, so a push or pop is a
    /// store or load (an Array's uniqueness and capacity checks were most of a take and a give).
    private let slabFree: UnsafeMutablePointer<Int32>
    private var slabFreeCount = 0
    /// Spare malloc blocks of the larger sizes, a few each.
    private var spare: [[UnsafeMutableRawPointer]] = Array(repeating: [], count: classes)
    private let spareLimit = 4

    public init(slabBlocks: Int = 1024) {
        self.slabBlocks = slabBlocks
        let bytes = slabBlocks * Self.blockSize
        let p = slabBlocks == 0 ? MAP_FAILED : mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        slab = p == MAP_FAILED ? nil : p
        slabFree = .allocate(capacity: max(slabBlocks, 1))
    }

    deinit {
        if let slab { munmap(slab, slabBlocks * Self.blockSize) }
        slabFree.deallocate()
        for list in spare { for b in list { b.deallocate() } }
    }

    /// The size class of a block of `size` bytes, nil when it is not one the pool keeps.
    @inline(__always) static func sizeClass(_ size: Int) -> Int? {
        for k in 0..<classes where size == blockSize << k { return k }
        return nil
    }

    func take(_ k: Int) -> UnsafeMutableRawPointer {
        if k == 0, let slab {
            if slabFreeCount > 0 { slabFreeCount -= 1; return slab + Int(slabFree[slabFreeCount]) * Self.blockSize }
            if slabUsed < slabBlocks { slabUsed += 1; return slab + (slabUsed - 1) * Self.blockSize }
        }
        return spare[k].popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: Self.blockSize << k, alignment: 16)
    }

    func give(_ block: UnsafeMutableRawPointer, _ k: Int) {
        if k == 0, let slab, block >= slab, block < slab + slabBlocks * Self.blockSize {
            slabFree[slabFreeCount] = Int32((block - slab) / Self.blockSize)
            slabFreeCount += 1
        } else if spare[k].count < spareLimit {
            spare[k].append(block)
        } else {
            block.deallocate()
        }
    }

    /// Returns the pages of unused blocks to the kernel: free slab blocks stay in the pool (their
    /// next use faults zero pages in again), spare malloc blocks are freed. After a surge.
    public func releaseFreeBlocks() {
        if let slab {
            for j in 0..<slabFreeCount { _ = madvise(slab + Int(slabFree[j]) * Self.blockSize, Self.blockSize, MADV_DONTNEED) }
        }
        for k in spare.indices {
            for b in spare[k] { b.deallocate() }
            spare[k].removeAll()
        }
    }

    /// Blocks ready to hand out without touching the allocator (slab blocks returned, spares).
    public var spareCount: Int { slabFreeCount + spare.reduce(0) { $0 + $1.count } }
}
