// The Linux epoll and eventfd interfaces for Swift (Glibc's module includes neither), and naming the calling thread:
// SocketExchangePoller watches probe sockets with it on a thread of its own.
#ifndef CROWSNEST_CEPOLL_H
#define CROWSNEST_CEPOLL_H
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>

/// Names the calling thread (at most 15 bytes shown), as `top -H` and /proc/PID/task/TID/comm show it.
static inline void cepoll_name_this_thread(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}
#endif
#endif
