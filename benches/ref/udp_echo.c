/*
 * The yardstick for echochat's udp-echo in `cargo bench`: the least a UDP
 * echo server can do. One thread, one socket, blocking recvfrom/sendto,
 * nothing else (no event loop, no logging, no counting). The bench compiles
 * it with `cc -O2` into target/ at run time and reads its CPU time from
 * /proc, as it does for echochat.
 *
 * It binds 127.0.0.1 on a port the OS picks and prints
 * "udp-echo listening on 127.0.0.1:PORT", the line echochat prints.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    printf("udp-echo listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    char buf[65536];
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
        if (n < 0) {
            continue;
        }
        /* Like echochat: a reply the kernel will not take is dropped. */
        sendto(fd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&peer, plen);
    }
}
