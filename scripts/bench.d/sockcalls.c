// The CPU cost of a socket syscall through write/read against send/recv: one process
// ping-pongs 200 bytes over a loopback TCP pair, alternating the two pairs of calls round by
// round (the host's drift then hits both alike), and prints CPU ns per syscall (loopback
// delivery included). The socket BIO (CGatewayShims/socket_bio.c) uses send/recv because of it.
//   cc -O2 -o /tmp/sockcalls scripts/bench.d/sockcalls.c && taskset -c 0 /tmp/sockcalls 200000 16
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200000, rounds = argc > 2 ? atoi(argv[2]) : 16, one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &al)) { perror("listen"); return 1; }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (void *)&a, sizeof a)) { perror("connect"); return 1; }
    int s = accept(l, NULL, NULL);
    if (s < 0) { perror("accept"); return 1; }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    for (int r = 0; r < rounds; r++) {
        int sendrecv = r % 2;
        double t0 = cpu_seconds();
        for (int i = 0; i < n; i++) {
            if (sendrecv) {
                if (send(c, buf, 200, MSG_NOSIGNAL) != 200 || recv(s, buf, sizeof buf, 0) <= 0
                    || send(s, buf, 200, MSG_NOSIGNAL) != 200 || recv(c, buf, sizeof buf, 0) <= 0) { perror("send/recv"); return 1; }
            } else if (write(c, buf, 200) != 200 || read(s, buf, sizeof buf) <= 0
                       || write(s, buf, 200) != 200 || read(c, buf, sizeof buf) <= 0) { perror("write/read"); return 1; }
        }
        printf("%s %.0f ns per syscall\n", sendrecv ? "send/recv " : "write/read", (cpu_seconds() - t0) / n / 4 * 1e9);
    }
    return 0;
}
