/// Spare buffer blocks of one event loop thread. A connection's buffers hold memory only
/// while they hold bytes (an idle keep-alive connection owns none), so without a pool every
/// request would allocate and free its four 16 KiB blocks; with it they come from here.
/// Owned and used by one loop thread only: no locks.
public final class BufferPool {
    /// The one block size pooled: what a buffer starts with. Larger (grown) blocks are freed.
    public static let blockSize = 16 * 1024
    private var spare: [UnsafeMutableRawPointer] = []
    /// Blocks kept at most (4 MiB): past a load peak the rest go back to the allocator.
    private let limit: Int

    public init(limit: Int = 256) {
        self.limit = limit
        spare.reserveCapacity(limit)
    }

    deinit { for b in spare { b.deallocate() } }

    func take() -> UnsafeMutableRawPointer {
        spare.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: Self.blockSize, alignment: 16)
    }

    func give(_ block: UnsafeMutableRawPointer) {
        if spare.count < limit { spare.append(block) } else { block.deallocate() }
    }

    public var spareCount: Int { spare.count }
}
