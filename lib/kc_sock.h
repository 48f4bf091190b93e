/*  =========================================================================
    kc_sock - what keyclone needs to know about the file descriptors of
    libzmq's connections: the peer's address and how many bytes a TCP
    connection has sent and received (the kernel's TCP_INFO counters).
    =========================================================================
*/
#ifndef KC_SOCK_H_INCLUDED
#define KC_SOCK_H_INCLUDED

#include "kc_util.h"

#define KC_SOCK_ADDRESS_MAX 64

//  The peer of a connected socket: its IP text and port for TCP (returns
//  1), or nothing for other families (returns 0); -1 if fd is not a
//  connected socket.
int
    kc_sock_peer (int fd, char ip [static KC_SOCK_ADDRESS_MAX], uint16_t *port);

//  Bytes sent and received so far on a TCP connection. Returns 0, or -1 if
//  the kernel does not report them (not TCP, or too old a kernel).
int
    kc_sock_bytes (int fd, uint64_t *sent, uint64_t *received);

//  Self test of this module.
void
    kc_sock_test (bool verbose);

#endif
