/// Spare buffer blocks of one event loop thread. A connection's buffers hold memory only
/// while they hold bytes (an idle keep-alive connection owns none), so without a pool every
/// request would allocate and free its blocks; with it they come from here. Blocks come in
/// four sizes, 16 KiB doubling to 128 KiB (a buffer grows past 16 KiB when a 16 KiB body and
/// its head meet in one buffer; the high-water mark keeps them below 128 KiB).
/// Owned and used by one loop thread only: no locks.
public final class BufferPool {
    /// The smallest block: what a buffer starts with.
    public static let blockSize = 16 * 1024
    static let classes = 4
    private var spare: [[UnsafeMutableRawPointer]]
    /// Blocks kept at most per size (4 MiB each): past a load peak the rest go back to the allocator.
    private let limits: [Int]

    public init(bytesPerClass: Int = 4 * 1024 * 1024) {
        limits = (0..<Self.classes).map { bytesPerClass / (Self.blockSize << $0) }
        spare = limits.map { n in var a: [UnsafeMutableRawPointer] = []; a.reserveCapacity(n); return a }
    }

    deinit { for list in spare { for b in list { b.deallocate() } } }

    /// The size class of a block of `size` bytes, nil when it is not one the pool keeps.
    @inline(__always) static func sizeClass(_ size: Int) -> Int? {
        for k in 0..<classes where size == blockSize << k { return k }
        return nil
    }

    func take(_ k: Int) -> UnsafeMutableRawPointer {
        spare[k].popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: Self.blockSize << k, alignment: 16)
    }

    func give(_ block: UnsafeMutableRawPointer, _ k: Int) {
        if spare[k].count < limits[k] { spare[k].append(block) } else { block.deallocate() }
    }

    public var spareCount: Int { spare.reduce(0) { $0 + $1.count } }
}
