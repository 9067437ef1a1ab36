import Glibc

/// A growable byte buffer with read and write indices, holding memory only while it holds
/// data (an idle keep-alive connection owns no buffer memory). With a pool, its first block
/// comes from and goes back to the loop thread's `BufferPool` instead of the allocator.
public struct ByteBuffer: ~Copyable {
    public private(set) var base: UnsafeMutableRawPointer?
    public private(set) var capacity = 0
    public private(set) var readIndex = 0
    public private(set) var writeIndex = 0
    /// The loop thread's pool, retained once for the buffer's life and released in deinit.
    /// Unmanaged so that each take and give uses it at +0 (a strong optional was retained and
    /// released around every use: 12 of a keep-alive request's retains and releases).
    private let pool: Unmanaged<BufferPool>?

    public init(pool: BufferPool? = nil) { self.pool = pool.map { Unmanaged.passRetained($0) } }
    deinit {
        if let b = base { free(b, capacity) }
        pool?.release()
    }

    private func free(_ block: UnsafeMutableRawPointer, _ size: Int) {
        if let pool, let k = BufferPool.sizeClass(size) { pool._withUnsafeGuaranteedRef { $0.give(block, k) } } else { block.deallocate() }
    }

    public var readableCount: Int { writeIndex - readIndex }
    public var isEmpty: Bool { readIndex == writeIndex }

    /// The unread bytes.
    public var readable: UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + readIndex, count: writeIndex - readIndex)
    }

    /// Space to write at least `minimum` bytes into; call `didWrite` after.
    public mutating func writableSpace(minimum: Int) -> UnsafeMutableRawBufferPointer {
        reserve(minimum)
        return UnsafeMutableRawBufferPointer(start: base! + writeIndex, count: capacity - writeIndex)
    }

    public mutating func didWrite(_ n: Int) { writeIndex += n }

    public mutating func consume(_ n: Int) {
        readIndex += n
        if readIndex == writeIndex { readIndex = 0; writeIndex = 0 }
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (base! + writeIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writeIndex += bytes.count
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }
    public mutating func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
    public mutating func append(_ s: String) {
        // A native or literal string lends its UTF-8 storage as it is (no copy of the String,
        // so no retain and release of its buffer per call); others take the copying path.
        if s.utf8.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) == nil {
            var s = s
            s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
        }
    }
    public mutating func append(byte: UInt8) {
        reserve(1)
        base!.storeBytes(of: byte, toByteOffset: writeIndex, as: UInt8.self)
        writeIndex += 1
    }
    /// Decimal text of a non-negative integer, without going through String.
    public mutating func append(decimal value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var n = value, count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[23 - count] = UInt8(48 + n % 10); n /= 10; count += 1 } while n > 0
            append(UnsafeRawBufferPointer(rebasing: d[(24 - count)...]))
        }
    }
    /// Lower-case hex without leading zeros (chunk sizes).
    public mutating func append(hex value: Int) {
        let digits: StaticString = "0123456789abcdef"
        var shift = 60
        while shift > 0 && (value >> shift) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            append(byte: digits.utf8Start[(value >> shift) & 0xF])
            shift -= 4
        }
    }

    public mutating func clear() { readIndex = 0; writeIndex = 0 }

    /// Frees the memory once nothing is left in it.
    public mutating func releaseIfEmpty() {
        guard isEmpty, let b = base else { return }
        free(b, capacity)
        base = nil; capacity = 0; readIndex = 0; writeIndex = 0
    }

    private mutating func reserve(_ n: Int) {
        if capacity - writeIndex >= n { return }
        let live = writeIndex - readIndex
        if let b = base, readIndex > 0, capacity - live >= n {
            // Compact: move the unread bytes to the front.
            b.copyMemory(from: b + readIndex, byteCount: live)
            readIndex = 0; writeIndex = live
            return
        }
        var newCap = max(capacity * 2, BufferPool.blockSize)
        while newCap - live < n { newCap *= 2 }
        let nb: UnsafeMutableRawPointer
        if let pool, let k = BufferPool.sizeClass(newCap) { nb = pool._withUnsafeGuaranteedRef { $0.take(k) } } else {
            nb = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
        }
        if let b = base {
            nb.copyMemory(from: b + readIndex, byteCount: live)
            free(b, capacity)
        }
        base = nb; capacity = newCap; readIndex = 0; writeIndex = live
    }
}
