/*  =========================================================================
    kc_sock - peer addresses and TCP byte counters of connection fds.
    Kept apart because <linux/tcp.h> (which has the counters) cannot share a
    file with glibc's <netinet/tcp.h>.
    =========================================================================
*/
#include "kc_sock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
kc_sock_peer (int fd, char ip [static KC_SOCK_ADDRESS_MAX], uint16_t *port)
{
    struct sockaddr_storage address;
    socklen_t size = sizeof address;
    ip [0] = 0;
    *port = 0;
    if (getpeername (fd, (struct sockaddr *) &address, &size)) {
        return -1;
    }
    if (address.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *) &address;
        inet_ntop (AF_INET, &in->sin_addr, ip, KC_SOCK_ADDRESS_MAX);
        *port = ntohs (in->sin_port);
        return 1;
    }
    if (address.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &address;
        inet_ntop (AF_INET6, &in6->sin6_addr, ip, KC_SOCK_ADDRESS_MAX);
        *port = ntohs (in6->sin6_port);
        return 1;
    }
    return 0;
}

int
kc_sock_bytes (int fd, uint64_t *sent, uint64_t *received)
{
    struct tcp_info info;
    socklen_t size = sizeof info;
    memset (&info, 0, sizeof info);
    if (getsockopt (fd, IPPROTO_TCP, TCP_INFO, &info, &size)
    ||  size < offsetof (struct tcp_info, tcpi_bytes_sent) + sizeof info.tcpi_bytes_sent) {
        return -1;
    }
    *sent = info.tcpi_bytes_sent;
    *received = info.tcpi_bytes_received;
    return 0;
}

void
kc_sock_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_sock: ");
    }
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t size = sizeof address;
    assert (bind (listener, (struct sockaddr *) &address, sizeof address) == 0);
    assert (listen (listener, 4) == 0);
    assert (getsockname (listener, (struct sockaddr *) &address, &size) == 0);
    int client = socket (AF_INET, SOCK_STREAM, 0);
    assert (connect (client, (struct sockaddr *) &address, sizeof address) == 0);
    int server = accept (listener, NULL, NULL);
    assert (server >= 0);
    assert (write (client, "hello", 5) == 5);
    char buffer [8];
    assert (read (server, buffer, sizeof buffer) == 5);
    assert (write (server, "hi", 2) == 2);
    char ip [KC_SOCK_ADDRESS_MAX];
    uint16_t port;
    assert (kc_sock_peer (server, ip, &port) == 1 && KC_STREQ (ip, "127.0.0.1") && port > 0);
    uint64_t sent, received;
    if (kc_sock_bytes (server, &sent, &received) == 0) {
        assert (sent == 2 && received == 5);
    }
    assert (kc_sock_peer (listener, ip, &port) == -1);
    int pair [2];
    assert (socketpair (AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    assert (kc_sock_peer (pair [0], ip, &port) == 0);
    assert (kc_sock_bytes (pair [0], &sent, &received) == -1);
    close (pair [0]);
    close (pair [1]);
    close (client);
    close (server);
    close (listener);
    if (verbose) {
        printf ("OK\n");
    }
}
