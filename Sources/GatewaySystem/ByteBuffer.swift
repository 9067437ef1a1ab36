import Glibc

/// A growable byte buffer with read and write indices, holding memory only while it holds
/// data (an idle keep-alive connection owns no buffer memory). With a pool, its first block
/// comes from and goes back to the loop thread's `BufferPool` instead of the allocator.
///
/// The small steps (append, consume, the counts) are inlinable: other modules call them for
/// every header and body part, and a call per step cost more than the step.
public struct ByteBuffer: ~Copyable {
    @usableFromInline var _base: UnsafeMutableRawPointer?
    @usableFromInline var _capacity = 0
    @usableFromInline var _readIndex = 0
    @usableFromInline var _writeIndex = 0
    public var base: UnsafeMutableRawPointer? { @inlinable get { _base } }
    public var capacity: Int { @inlinable get { _capacity } }
    public var readIndex: Int { @inlinable get { _readIndex } }
    public var writeIndex: Int { @inlinable get { _writeIndex } }
    /// The loop thread's pool, retained once for the buffer's life and released in deinit.
    /// Unmanaged so that each take and give uses it at +0 (a strong optional was retained and
    /// released around every use: 12 of a keep-alive request's retains and releases).
    private let pool: Unmanaged<BufferPool>?

    public init(pool: BufferPool? = nil) { self.pool = pool.map { Unmanaged.passRetained($0) } }
    deinit {
        if let b = _base { free(b, _capacity) }
        pool?.release()
    }

    private func free(_ block: UnsafeMutableRawPointer, _ size: Int) {
        if let pool, let k = BufferPool.sizeClass(size) { pool._withUnsafeGuaranteedRef { $0.give(block, k) } } else { block.deallocate() }
    }

    @inlinable public var readableCount: Int { _writeIndex - _readIndex }
    @inlinable public var isEmpty: Bool { _readIndex == _writeIndex }
    /// Bytes that fit after the unread ones without moving or growing the storage.
    @inlinable public var writableCount: Int { _capacity - _writeIndex }

    /// The unread bytes.
    @inlinable public var readable: UnsafeRawBufferPointer {
        guard let _base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: _base + _readIndex, count: _writeIndex - _readIndex)
    }

    /// Space to write at least `minimum` bytes into; call `didWrite` after.
    @inlinable public mutating func writableSpace(minimum: Int) -> UnsafeMutableRawBufferPointer {
        reserve(minimum)
        return UnsafeMutableRawBufferPointer(start: _base! + _writeIndex, count: _capacity - _writeIndex)
    }

    @inlinable public mutating func didWrite(_ n: Int) { _writeIndex += n }

    @inlinable public mutating func consume(_ n: Int) {
        _readIndex += n
        if _readIndex == _writeIndex { _readIndex = 0; _writeIndex = 0 }
    }

    @inlinable public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (_base! + _writeIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        _writeIndex += bytes.count
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }
    /// Always inlined: the literal's length is then a constant and the copy a few moves, where
    /// a call cost ~50 instructions (14 per proxied HTTP/1.1 request).
    @inlinable @inline(__always) public mutating func append(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        guard n > 0 else { return }   // "" (a reason phrase of an unknown status) on an empty buffer
        reserve(n)
        (_base! + _writeIndex).copyMemory(from: UnsafeRawPointer(s.utf8Start), byteCount: n)
        _writeIndex += n
    }
    /// Disfavoured: a string literal takes the StaticString overload (inlined, a plain copy)
    /// rather than this call (23 of them per proxied HTTP/1.1 request before).
    @_disfavoredOverload
    public mutating func append(_ s: String) {
        // A native or literal string lends its UTF-8 storage as it is (no copy of the String,
        // so no retain and release of its buffer per call); others take the copying path.
        if s.utf8.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) == nil {
            var s = s
            s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
        }
    }
    @inlinable public mutating func append(byte: UInt8) {
        reserve(1)
        _base!.storeBytes(of: byte, toByteOffset: _writeIndex, as: UInt8.self)
        _writeIndex += 1
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

    @inlinable public mutating func clear() { _readIndex = 0; _writeIndex = 0 }

    /// Swaps the memory and contents of two buffers of the same pool (a block goes back to the
    /// pool it came from): a body read into one connection's input moves to the buffer it is
    /// sent from without being copied. False, and nothing changed, when the pools differ.
    public mutating func exchangeContents(with other: inout ByteBuffer) -> Bool {
        guard pool?.toOpaque() == other.pool?.toOpaque() else { return false }
        Swift.swap(&_base, &other._base)
        Swift.swap(&_capacity, &other._capacity)
        Swift.swap(&_readIndex, &other._readIndex)
        Swift.swap(&_writeIndex, &other._writeIndex)
        return true
    }

    /// Frees the memory once nothing is left in it.
    public mutating func releaseIfEmpty() {
        guard isEmpty, let b = _base else { return }
        free(b, _capacity)
        _base = nil; _capacity = 0; _readIndex = 0; _writeIndex = 0
    }

    /// Inlined: most appends fit, and then cost one compare, not a call.
    @inlinable @inline(__always) mutating func reserve(_ n: Int) {
        if _capacity - _writeIndex < n { makeRoom(n) }
    }

    @usableFromInline @inline(never) mutating func makeRoom(_ n: Int) {
        let live = _writeIndex - _readIndex
        if let b = _base, _readIndex > 0, _capacity - live >= n {
            // Compact: move the unread bytes to the front.
            b.copyMemory(from: b + _readIndex, byteCount: live)
            _readIndex = 0; _writeIndex = live
            return
        }
        var newCap = max(_capacity * 2, BufferPool.blockSize)
        while newCap - live < n { newCap *= 2 }
        let nb: UnsafeMutableRawPointer
        if let pool, let k = BufferPool.sizeClass(newCap) { nb = pool._withUnsafeGuaranteedRef { $0.take(k) } } else {
            nb = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
        }
        if let b = _base {
            nb.copyMemory(from: b + _readIndex, byteCount: live)
            free(b, _capacity)
        }
        _base = nb; _capacity = newCap; _readIndex = 0; _writeIndex = live
    }
}
