import Glibc
import Testing
import GatewaySystem

/// Real files in a temp directory; inotify queues an event before the call that caused it
/// returns, so `drain` right after each step sees it.
@Suite struct FileWatcherTests {
    @Test func writeInPlaceCounts() throws {
        let dir = makeTempDirectory("watch")
        defer { removeTree(dir) }
        writeFile(dir + "/cert.pem", "one")
        let w = try FileWatcher(paths: [dir + "/cert.pem"])
        #expect(w.failures.isEmpty)
        #expect(!w.drain())
        writeFile(dir + "/cert.pem", "two")
        #expect(w.drain())
        #expect(!w.drain())
        chmod(dir + "/cert.pem", 0o640)   // IN_ATTRIB
        #expect(w.drain())
    }

    @Test func renameOverCounts() throws {
        let dir = makeTempDirectory("watch")
        defer { removeTree(dir) }
        writeFile(dir + "/cert.pem", "one")
        let w = try FileWatcher(paths: [dir + "/cert.pem"])
        writeFile(dir + "/.cert.pem.tmp", "two")
        #expect(!w.drain())   // the temporary name is not watched
        rename(dir + "/.cert.pem.tmp", dir + "/cert.pem")
        #expect(w.drain())
        unlink(dir + "/cert.pem")
        #expect(w.drain())
        writeFile(dir + "/cert.pem", "three")   // created again
        #expect(w.drain())
    }

    @Test func unrelatedFileInTheSameDirectoryDoesNotCount() throws {
        let dir = makeTempDirectory("watch")
        defer { removeTree(dir) }
        writeFile(dir + "/cert.pem", "one")
        let w = try FileWatcher(paths: [dir + "/cert.pem"])
        writeFile(dir + "/notes.txt", "x")
        chmod(dir + "/notes.txt", 0o644)
        rename(dir + "/notes.txt", dir + "/notes2.txt")
        unlink(dir + "/notes2.txt")
        mkdir(dir + "/sub", 0o700)
        #expect(!w.drain())
    }

    @Test func kubernetesDataSymlinkSwapCounts() throws {
        let dir = makeTempDirectory("k8s")
        defer { removeTree(dir) }
        // The layout kubelet's atomic writer leaves for a Secret volume.
        func version(_ stamp: String, _ text: String) {
            mkdir(dir + "/" + stamp, 0o755)
            writeFile(dir + "/\(stamp)/tls.crt", "crt " + text)
            writeFile(dir + "/\(stamp)/tls.key", "key " + text)
        }
        func swap(to stamp: String) {
            symlink(stamp, dir + "/..data_tmp")
            rename(dir + "/..data_tmp", dir + "/..data")
        }
        version("..2026_12_01_01_00_00.000000001", "v1")
        symlink("..2026_12_01_01_00_00.000000001", dir + "/..data")
        symlink("..data/tls.crt", dir + "/tls.crt")
        symlink("..data/tls.key", dir + "/tls.key")

        let w = try FileWatcher(paths: [dir + "/tls.crt", dir + "/tls.key"])
        #expect(w.failures.isEmpty)
        version("..2026_12_01_02_00_00.000000002", "v2")
        #expect(!w.drain())   // a new timestamped directory alone changes nothing yet
        swap(to: "..2026_12_01_02_00_00.000000002")
        #expect(w.drain())

        // kubelet then removes the old version; the watch has already moved to the new one.
        removeTree(dir + "/..2026_12_01_01_00_00.000000001")
        #expect(!w.drain())
        // A write inside the new target directory is seen (it is what the links lead to).
        writeFile(dir + "/..2026_12_01_02_00_00.000000002/tls.crt", "crt v2b")
        #expect(w.drain())

        // And a second rotation is seen just like the first.
        version("..2026_12_01_03_00_00.000000003", "v3")
        swap(to: "..2026_12_01_03_00_00.000000003")
        #expect(w.drain())
    }

    @Test func rewatchReplacesTheSet() throws {
        let dir = makeTempDirectory("watch")
        let other = makeTempDirectory("watch2")
        defer { removeTree(dir); removeTree(other) }
        writeFile(dir + "/a.pem", "a")
        writeFile(other + "/b.pem", "b")
        let w = try FileWatcher(paths: [dir + "/a.pem"])
        w.rewatch(paths: [other + "/b.pem"])
        writeFile(dir + "/a.pem", "a2")
        #expect(!w.drain())
        writeFile(other + "/b.pem", "b2")
        #expect(w.drain())
    }

    @Test func aMissingDirectoryIsReportedNotFatal() throws {
        let w = try FileWatcher(paths: ["/nonexistent-gw-dir/x/cert.pem"])
        #expect(!w.failures.isEmpty)
        #expect(!w.drain())
    }

    @Test func theDescriptorBecomesReadable() throws {
        let dir = makeTempDirectory("watch")
        defer { removeTree(dir) }
        let w = try FileWatcher(paths: [dir + "/cert.pem"])
        var p = pollfd(fd: w.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 0) == 0)
        writeFile(dir + "/cert.pem", "new")
        #expect(poll(&p, 1, 1000) == 1)
        #expect(w.drain())
    }
}

@Suite struct DebouncerTests {
    /// `fire` is mutating, which `#expect` cannot call inline.
    func fires(_ d: inout Debouncer, _ now: UInt64) -> Bool { d.fire(now: now) }

    @Test func firesOnceASecondAfterTheLastChange() {
        var d = Debouncer()
        #expect(fires(&d, 10_000) == false)
        #expect(d.remainingMs(now: 10_000) == nil)
        d.changed(now: 10_000)
        d.changed(now: 10_400)   // a burst: the deadline moves
        #expect(d.remainingMs(now: 10_500) == 900)
        #expect(fires(&d, 11_000) == false)
        #expect(fires(&d, 11_399) == false)
        #expect(fires(&d, 11_400) == true)
        #expect(fires(&d, 11_401) == false)
        #expect(d.deadline == nil)
        d.changed(now: 20_000)
        #expect(fires(&d, 25_000) == true)   // late callers still fire once
        #expect(d.remainingMs(now: 25_000) == nil)
    }

    @Test func customDelay() {
        var d = Debouncer(delayMs: 250)
        d.changed(now: 0)
        #expect(fires(&d, 249) == false)
        #expect(fires(&d, 250) == true)
    }
}
