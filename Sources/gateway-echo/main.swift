// gateway-echo: a tiny HTTPS origin (HTTP/1.1 and h2) for the demo, the tests and the benchmark.
// One thread per connection with blocking sockets: simple and obviously correct, which
// is what a test origin must be; the gateway's speed is measured, not this program's.
import Glibc
import COpenSSL
import CGatewayShims

let usage = """
usage: gateway-echo --listen ADDR:PORT --cert PEM --key PEM [--client-ca PEM]
                    [--client-auth optional|required] [--min-version 1.0|1.1|1.2|1.3]
                    [--max-version ...] [--name NAME] [--health-status N]
"""

func printError(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    printError("gateway-echo: \(message)")
    exit(2)
}

let options = EchoOptions.parse(Array(CommandLine.arguments.dropFirst())) ?? { fail(usage) }()
signal(SIGPIPE, SIG_IGN)
// A parent (a test runner) may have left signals blocked; SIGTERM must stop the origin at once.
var unblock = sigset_t()
sigfillset(&unblock)
pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
let server = EchoServer(context: EchoTLS.context(options), name: options.name, healthStatus: options.healthStatus)
let listenFD = listenSocket(options.host, options.port)
printError("gateway-echo listening on \(options.listen)")
while true {
    let fd = accept(listenFD, nil, nil)
    if fd < 0 { if errno == EINTR || errno == ECONNABORTED { continue }; fail("accept: \(String(cString: strerror(errno)))") }
    server.spawn(fd)
}
